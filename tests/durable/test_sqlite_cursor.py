"""The engine's SQLite cursor translates Django's placeholders as Django's does, remembering each
statement's translation (the same few statements run over and over)."""

from __future__ import annotations

import sqlite3

import pytest

from durable.backends.sqlite3.base import CursorWrapper, _qmark


def cursor() -> CursorWrapper:
    return sqlite3.connect(":memory:").cursor(factory=CursorWrapper)


def test_placeholders_and_literal_percents_are_translated_as_django_does():
    c = cursor()
    for _ in range(2):  # translated, then remembered
        assert c.execute("SELECT %s, '%%s', '100%%'", ["a"]).fetchone() == ("a", "%s", "100%")
    c.execute("CREATE TABLE t (v)")
    c.executemany("INSERT INTO t VALUES (%s)", [[1], [2]])
    assert c.execute("SELECT sum(v) FROM t WHERE v <> %s", [0]).fetchone() == (3,)
    assert c.execute("SELECT %(x)s, %(y)s", {"x": 1, "y": 2}).fetchone() == (1, 2)  # pyformat


def test_a_statement_is_translated_once():
    _qmark.cache_clear()
    c = cursor()
    for value in range(5):
        c.execute('SELECT %s AS "value"', [value])
    info = _qmark.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_datetimes_are_written_as_djangos_operations_write_them(settings):
    """The engine's SQLite operations take a shortcut for aware UTC datetimes; every kind of value
    is written as Django's own operations write it, so stored text compares the same."""
    import zoneinfo
    from datetime import UTC, datetime, timedelta, timezone

    from django.db.backends.sqlite3.operations import DatabaseOperations
    from django.db.utils import ConnectionHandler

    from durable.backends.sqlite3.base import DatabaseOperations as Ours

    # The engine's SQLite backend, whatever database the tests run on.
    connection = ConnectionHandler({"default": {"ENGINE": "durable.backends.sqlite3", "NAME": ":memory:"}})["default"]
    assert isinstance(connection.ops, Ours)
    djangos = DatabaseOperations(connection)
    values = [
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: no fraction either
        datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 7, 2, 3, 4, 5, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        None,
    ]
    for value in values:
        assert connection.ops.adapt_datetimefield_value(value) == djangos.adapt_datetimefield_value(value)
    assert connection.ops.adapt_datetimefield_value(values[2]) == "2026-01-02 01:04:05.000007"
    settings.USE_TZ = False  # naive values, as Django writes them
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert connection.ops.adapt_datetimefield_value(naive) == djangos.adapt_datetimefield_value(naive)
    for ops in (connection.ops, djangos):  # and an aware one is refused, as Django refuses it
        with pytest.raises(ValueError, match="USE_TZ is False"):
            ops.adapt_datetimefield_value(values[0])
