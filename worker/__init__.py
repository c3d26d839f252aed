"""worker: RQ workers that persist queued messages to Postgres."""
