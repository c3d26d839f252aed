"""Faults on the real processes, under clients that retry as careful clients do."""
