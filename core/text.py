"""Checks on user-supplied text, shared by request parsing (core/middleware.py) and the
services that store names (core/services/classes.py)."""

CONTROL_CHARACTERS = frozenset(chr(c) for c in range(32)) | {"\x7f"}


def has_control_characters(text: str) -> bool:
    """NUL, escape, DEL and the rest of C0: never part of a name or a parameter of ours (and
    PostgreSQL refuses NUL in text with an error)."""
    return any(c in CONTROL_CHARACTERS for c in text)
