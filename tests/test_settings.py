import pytest
from django.db import connection


@pytest.mark.django_db
def test_sqlite_is_tuned_for_a_journal():
    assert connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 5000
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == 10000
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert connection.settings_dict["ENGINE"] == "durable.backends.sqlite3"  # writers take turns


def test_production_refuses_development_defaults(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import config.settings as module

    monkeypatch.setenv("DJANGO_ENV", "production")
    monkeypatch.setenv("DJANGO_DEBUG", "false")
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        importlib.reload(module)
    monkeypatch.setenv("DJANGO_DEBUG", "true")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 40)
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        importlib.reload(module)
    monkeypatch.setenv("DJANGO_DEBUG", "false")
    monkeypatch.setenv("APPROVALS_WEBHOOK_ALLOW_HTTP", "true")
    with pytest.raises(ImproperlyConfigured, match="https-only"):
        importlib.reload(module)
    monkeypatch.delenv("APPROVALS_WEBHOOK_ALLOW_HTTP")
    importlib.reload(module)  # a real key and DEBUG off: accepted
    assert module.DEBUG is False
    assert module.APPROVALS["WEBHOOK_ALLOW_HTTP"] is False  # https only by default with DEBUG off
    assert module.APPROVALS["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] is False
    monkeypatch.delenv("DJANGO_ENV")
    monkeypatch.delenv("DJANGO_DEBUG")
    monkeypatch.delenv("DJANGO_SECRET_KEY")
    importlib.reload(module)
