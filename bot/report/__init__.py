"""The integrators' report: what teachers ask, where the knowledge base has gaps, how handoffs go."""
