"""Triage: where a message goes (a person, the helpdesk, a short reply, or coaching) and why."""
