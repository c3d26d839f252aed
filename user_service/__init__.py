"""user_service: users, password hashing and access tokens."""
