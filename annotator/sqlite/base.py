"""SQLite for a multi-threaded server: write transactions queue on a lock in this process.

The embedded default serves every request from threads of one process. SQLite lets one
writer in at a time; the others wait in SQLite's busy handler, which sleeps and retries
(1, 2, 5, 10 ... 100 ms) and is not first-come first-served. Under load a transaction
holding the write lock also waits for Python's GIL while the waiting threads wake up to
retry, so the lock is held longer still: bench/next_item.py measured p95 of 1-2.5 s at
saturation, p50 under 100 ms.

Here a transaction first takes a per-database lock of this process, so threads queue on
it (woken the moment it is released) and reach SQLite's own lock uncontended. The lock
is only about waiting well: SQLite's locking still decides correctness, and across
processes (`manage.py` commands, a separate worker) the busy timeout still applies. A
thread that cannot get the lock within the busy timeout goes ahead without it rather
than wait forever.
"""

import threading

from django.db.backends.sqlite3 import base

_locks: "dict[str, threading.Lock]" = {}
_locks_guard = threading.Lock()


def _write_lock(name: str) -> "threading.Lock":
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _held_lock: "threading.Lock | None" = None

    def _start_transaction_under_autocommit(self):
        if not self.is_in_memory_db():
            lock = _write_lock(str(self.settings_dict["NAME"]))
            timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
            if lock.acquire(timeout=timeout):
                self._held_lock = lock
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        if self._held_lock is not None:
            lock, self._held_lock = self._held_lock, None
            lock.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()
