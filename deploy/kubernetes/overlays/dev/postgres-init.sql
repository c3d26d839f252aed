-- Runs once, when the postgres container starts on an empty data volume.
-- POSTGRES_DB already created anonchat_users (user_service's); this is message_service's
-- and the workers'.
CREATE DATABASE anonchat_messages;
