from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class DurableConfig(AppConfig):
    name = "durable"
    verbose_name = "Durable executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from durable import conf

        conf.SETTINGS.check()  # a bad DURABLE_* variable fails here, by name
        # Durable functions live in each app's workflows.py; import them so workers know them.
        autodiscover_modules("workflows")
