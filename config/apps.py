from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    """Django's admin, with the project's site (config/admin.py)."""

    default_site = "config.admin.AdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin module, django-rq's included
        from django.contrib import admin

        from config.admin import guard_rq_dashboard

        guard_rq_dashboard(admin.site)
