"""Handoffs: escalation records, the context a person needs, and the outbox that delivers them."""
