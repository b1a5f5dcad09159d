"""annotator.sqlite: write transactions of one process queue on a lock, not in SQLite's
busy handler, and the lock is always given back."""

import threading

import pytest
from django.db import IntegrityError, connections, transaction
from django.db.utils import ConnectionHandler

from annotator.settings.base import sqlite_database
from annotator.sqlite.base import _write_lock

pytestmark = pytest.mark.custom_infra


@pytest.fixture
def db_alias(tmp_path, django_db_blocker):
    """A scratch file database under the alias "scratch" (the test database is not used)."""
    configured = ConnectionHandler({"default": sqlite_database(tmp_path / "scratch.sqlite3")})
    connections.settings["scratch"] = configured.settings["default"]
    with django_db_blocker.unblock():
        connection = connections["scratch"]
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER UNIQUE)")
        yield connections, connection
        connection.close()
    del connections["scratch"]
    del connections.settings["scratch"]


def _insert(connection, value):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO t (v) VALUES (%s)", [value])


def _lock_of(connection):
    return _write_lock(str(connection.settings_dict["NAME"]))


def test_the_lock_is_held_for_the_transaction_and_released_on_commit(db_alias):
    handler, connection = db_alias
    lock = _lock_of(connection)
    with transaction.atomic(using="scratch"):
        _insert(connection, 1)
        assert lock.locked()
    assert not lock.locked()


def test_the_lock_is_released_on_rollback_and_on_close(db_alias):
    handler, connection = db_alias
    lock = _lock_of(connection)
    with pytest.raises(IntegrityError), transaction.atomic(using="scratch"):
        _insert(connection, 1)
        _insert(connection, 1)
    assert not lock.locked()
    connection.ensure_connection()
    connection._start_transaction_under_autocommit()  # what atomic() does first
    assert lock.locked()
    connection.close()  # the connection closed halfway through a transaction
    assert not lock.locked()


def test_a_failed_begin_gives_the_lock_back(db_alias, monkeypatch):
    handler, connection = db_alias
    from django.db.backends.sqlite3.base import DatabaseWrapper as Stock

    def locked(self):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(Stock, "_start_transaction_under_autocommit", locked)
    with pytest.raises(RuntimeError), transaction.atomic(using="scratch"):
        pass
    assert not _lock_of(connection).locked()


def test_concurrent_writers_all_get_through(db_alias):
    handler, _ = db_alias
    errors = []

    def write(start):
        try:
            connection = handler["scratch"]  # one connection per thread
            for value in range(start, start + 20):
                with transaction.atomic(using="scratch"):
                    _insert(connection, value)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            handler["scratch"].close()

    threads = [threading.Thread(target=write, args=(100 * n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with handler["scratch"].cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM t")
        assert cursor.fetchone()[0] == 160
