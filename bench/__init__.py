"""The benchmark: ``python -m bench`` (see the README)."""
