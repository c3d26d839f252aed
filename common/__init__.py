"""Code shared by every anonchat service: settings, errors, database and HTTP helpers."""
