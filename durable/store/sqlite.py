"""SQLite: the lease taken in a transaction of its own (IMMEDIATE with our backend's settings).

An UPDATE outside a transaction reads first and takes SQLite's write lock late, upgrading a
read lock, which is what our IMMEDIATE transactions avoid: the lease waits several times longer
outside one (the README's benchmark notes give the figures). Everything else is the shared SQL
of `durable.store.base`; SQLite has no row locks to skip (one writer at a time anyway).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from django.db import transaction

from durable.store.base import SqlJournalStore


class SqliteJournalStore(SqlJournalStore):
    def _lease_transaction(self) -> AbstractContextManager[Any]:
        return transaction.atomic()
