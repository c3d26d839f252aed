"""message_service: accepts sends onto the queue and serves message reads."""
