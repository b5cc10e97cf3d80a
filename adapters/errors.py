"""Errors every composition root may raise; a module of their own so any adapter imports them without a cycle."""

from __future__ import annotations


class StartupError(RuntimeError):
    """The coach cannot start; the message says what to fix."""
