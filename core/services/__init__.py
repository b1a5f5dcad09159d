"""Writes. Each public function is `<thing>_<verb>(*, ...)` and owns its transaction."""
