from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class DurableConfig(AppConfig):
    name = "durable"
    verbose_name = "Durable executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from durable import conf, retention, threads, tracing

        conf.SETTINGS.check()  # a bad DURABLE_* variable fails here, by name
        retention.check_settings()  # so does a retention period out of 1..90 days
        check_database()
        tracing.set_enabled_check(tracing_enabled)
        threads.on_item_end(close_item_connections)
        # Durable functions live in each app's workflows.py; import them so workers know them.
        autodiscover_modules("workflows")


def check_database() -> None:
    """The default database's settings the journal cannot work with fail at start-up, by name."""
    from django.db import DEFAULT_DB_ALIAS, connections

    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        from durable.store.postgresql import check_binding

        check_binding(connections[DEFAULT_DB_ALIAS].settings_dict)


def close_item_connections() -> None:
    """Close the connections a map or parallel item's own code opened in its thread (its step
    bodies' ORM queries); the journal never uses them (durable.threads)."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def tracing_enabled() -> bool:
    """The settings' say on tracing (a provider set in code switches it on regardless)."""
    from durable import conf

    return bool(conf.get("TRACING") or conf.get("OTLP_ENDPOINT"))
