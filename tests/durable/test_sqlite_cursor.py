"""The engine's SQLite cursor translates Django's placeholders as Django's does, remembering each
statement's translation (the same few statements run over and over)."""

from __future__ import annotations

import sqlite3

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
