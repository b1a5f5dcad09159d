"""Reads, by what they serve: common, queue, progress (dashboard), review, browse.

Every function takes the project, already scoped to the user by the caller (core/access.py)."""
