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
        assert cursor.fetchone()[0] == 0  # checkpoints from a thread of ours (durable.backends.sqlite3)
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
    monkeypatch.setenv("DJANGO_SECRET_KEY", "a1b2c3d4e5" * 4)  # 40 characters: under Django's 50
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        importlib.reload(module)
    monkeypatch.setenv("DJANGO_DEBUG", "true")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "a1b2c3d4e5" * 6)
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        importlib.reload(module)
    monkeypatch.setenv("DJANGO_DEBUG", "false")
    monkeypatch.setenv("APPROVALS_WEBHOOK_ALLOW_HTTP", "true")
    with pytest.raises(ImproperlyConfigured, match="https-only"):
        importlib.reload(module)
    monkeypatch.delenv("APPROVALS_WEBHOOK_ALLOW_HTTP")
    importlib.reload(module)  # a real key and DEBUG off: accepted
    assert module.DEBUG is False
    from approvals.conf import SETTINGS as APPROVALS_SETTINGS

    assert APPROVALS_SETTINGS.from_environment("WEBHOOK_ALLOW_HTTP") is False  # https only with DEBUG off
    assert APPROVALS_SETTINGS.from_environment("WEBHOOK_ALLOW_PRIVATE_ADDRESSES") is False
    assert module.SECURE_SSL_REDIRECT is True
    assert module.SECURE_HSTS_SECONDS >= 31536000
    monkeypatch.delenv("DJANGO_ENV")
    monkeypatch.delenv("DJANGO_DEBUG")
    monkeypatch.delenv("DJANGO_SECRET_KEY")
    importlib.reload(module)


def test_the_development_key_is_random_per_install_and_kept(tmp_path):
    from config.settings import development_secret_key

    path = tmp_path / "var" / "dev-secret-key"
    key = development_secret_key(path)
    assert len(key) >= 50
    assert development_secret_key(path) == key  # kept
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert development_secret_key(tmp_path / "elsewhere" / "dev-secret-key") != key  # per install
    path.write_text("short")
    assert len(development_secret_key(path)) >= 50  # a weak key left by hand is replaced


def test_without_a_key_development_uses_the_installs_own_and_production_refuses(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import config.settings as module

    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.delenv("DJANGO_ENV", raising=False)
    try:
        importlib.reload(module)
        assert (module.BASE_DIR / "var" / "dev-secret-key").read_text().strip() == module.SECRET_KEY
        assert "insecure" not in module.SECRET_KEY
        monkeypatch.setenv("DJANGO_ENV", "production")  # DEBUG follows: off unless asked
        with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
            importlib.reload(module)
    finally:
        monkeypatch.delenv("DJANGO_ENV", raising=False)
        importlib.reload(module)


def production_env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "APPROVALS_"))}
    return {**env, "DJANGO_ENV": "production", "DJANGO_SECRET_KEY": "deploy-check-" + "q7" * 30, **extra}


@pytest.mark.parametrize("extra", [{}, {"DJANGO_BEHIND_TLS_PROXY": "true"}])
def test_production_passes_the_deploy_check_with_no_warnings(extra):
    import subprocess
    import sys

    from tests.processes import ROOT

    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(**extra),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_behind_a_tls_proxy_the_forwarded_scheme_counts(monkeypatch):
    import importlib

    import config.settings as module

    for name, value in production_env(DJANGO_BEHIND_TLS_PROXY="true").items():
        if name.startswith("DJANGO_"):
            monkeypatch.setenv(name, value)
    try:
        importlib.reload(module)
        assert module.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
        assert module.AXES_IPWARE_META_PRECEDENCE_ORDER[0] == "HTTP_X_FORWARDED_FOR"  # the client, not the proxy
        assert module.SECURE_SSL_REDIRECT is True
    finally:
        for name in ("DJANGO_ENV", "DJANGO_SECRET_KEY", "DJANGO_BEHIND_TLS_PROXY"):
            monkeypatch.delenv(name, raising=False)
        importlib.reload(module)
