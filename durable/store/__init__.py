"""The journal store: every SQL statement the engine runs, behind one interface.

- `base`: the `JournalStore` interface and the SQL both databases share;
- `leased`: `LeasedJournal`, the fenced writer an invocation checkpoints through (and starts
  invoked children, `children`, and cancels a race's callbacks, `cancel`, through);
- `sqlite`, `postgresql`: what each database does differently (or better);
- `sql`: the statements, built whole from the models' metadata, and the row codecs.

`journal_store()` is the store of the default database's vendor. Nothing outside this package
writes the journal's tables.
"""

from __future__ import annotations

from django.db import connection

from durable.store.base import JournalStore, Lease, NextLease, SqlJournalStore
from durable.store.leased import LeasedJournal
from durable.store.postgresql import PostgresJournalStore
from durable.store.sqlite import SqliteJournalStore

__all__ = ["JournalStore", "Lease", "LeasedJournal", "NextLease", "journal_store"]

_DIALECTS: dict[str, type[SqlJournalStore]] = {"postgresql": PostgresJournalStore, "sqlite": SqliteJournalStore}
_stores: dict[str, SqlJournalStore] = {}


def journal_store() -> SqlJournalStore:
    """The store for the default database (one per vendor); other vendors get the shared SQL."""
    vendor = connection.vendor
    if vendor not in _stores:
        _stores[vendor] = _DIALECTS.get(vendor, SqlJournalStore)()
    return _stores[vendor]
