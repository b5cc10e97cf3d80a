"""State: the database, conversation memory, the inbound queue and model usage."""
