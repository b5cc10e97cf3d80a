"""Composition: the words of a reply (templates, or a model checked against them)."""
