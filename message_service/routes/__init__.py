"""message_service's HTTP routes."""
