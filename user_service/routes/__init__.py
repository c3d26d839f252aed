"""user_service's HTTP routes."""
