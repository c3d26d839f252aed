"""gateway: the public API. Verifies tokens and forwards each endpoint to its owner."""
