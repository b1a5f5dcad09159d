"""Settings are split by environment: base (shared), dev (`make run`), test, prod.

Every value that differs between machines comes from an environment variable; see README.md.
"""
