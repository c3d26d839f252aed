"""The gateway's public routes."""
