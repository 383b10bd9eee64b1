"""The project's admin site: Django's, with two rules every admin page keeps.

- A staff user who holds no permission on a model (view, change, add or delete) gets 403 on
  every page under that model before its view runs, so a custom page (an execution's callback
  actions, say) cannot answer 404 for a made-up id and 403 for a real one.
- A query string must hold no NUL character (PostgreSQL refuses one in a search or a filter),
  and date lookups (`created_at__year=...`, the date drill-down) numbers a date can hold:
  anything else is a 400, not an error deep in Django or the database.

django-rq's dashboard shows job arguments and empties queues, and its views only ask for
`is_staff`: here it takes the permission django-rq declares (`django_rq.admin`), or a superuser.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string
from django.urls import URLPattern, URLResolver

View = Callable[..., HttpResponse]
DATE_PART = re.compile(r"__(iso_year|year|quarter|month|iso_week_day|week_day|week|day|hour|minute|second)$")
RQ_PERMISSION = "django_rq.admin"


def _bad_query(request: HttpRequest) -> str | None:
    """What is wrong with the query string, if anything: a NUL character (PostgreSQL refuses it
    in a search or a filter), or a date lookup no date can hold."""
    for key, values in request.GET.lists():
        if any("\x00" in text for text in (key, *values)):
            return f"{key or 'The query'} contains a NUL character."
        if DATE_PART.search(key):
            for value in values:
                limit = 9999 if key.endswith("year") else 59
                if not (value.isascii() and value.isdigit() and len(value) <= 4 and int(value) <= limit):
                    return f"{key} must be a number a date can hold."
    return None


def _guarded(view: View, model_admin: admin.ModelAdmin) -> View:  # type: ignore[type-arg]
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.is_staff and not any(model_admin.get_model_perms(request).values()):
            raise PermissionDenied
        problem = _bad_query(request)
        if problem is not None:
            return HttpResponseBadRequest(render_to_string("400.html", {"message": problem}, request))
        return view(request, *args, **kwargs)

    return wrapper


def _guard_patterns(patterns: list[Any], model_admin: admin.ModelAdmin) -> None:  # type: ignore[type-arg]
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _guarded(pattern.callback, model_admin)
        elif isinstance(pattern, URLResolver):
            _guard_patterns(pattern.url_patterns, model_admin)


class AdminSite(admin.AdminSite):
    def get_urls(self) -> list[URLResolver | URLPattern]:
        urls = super().get_urls()
        prefixes = {f"{model._meta.app_label}/{model._meta.model_name}/": ma for model, ma in self._registry.items()}
        for url in urls:
            if isinstance(url, URLResolver) and str(url.pattern) in prefixes:
                _guard_patterns(url.url_patterns, prefixes[str(url.pattern)])
        return urls


def _rq_dashboard_admin() -> type[admin.ModelAdmin]:  # type: ignore[type-arg]
    from django_rq.admin import QueueAdmin

    class DashboardAdmin(QueueAdmin):
        def _allowed(self, request: HttpRequest) -> bool:
            return bool(request.user.has_perm(RQ_PERMISSION))

        def has_module_permission(self, request: HttpRequest) -> bool:
            return self._allowed(request)

        def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
            return self._allowed(request)

        def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
            return self._allowed(request)

        def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
            if not self._allowed(request):
                raise PermissionDenied
            return super().changelist_view(request, extra_context)

    return DashboardAdmin


def guard_rq_dashboard(site: admin.AdminSite) -> None:
    """Re-register django-rq's dashboard on `site` behind RQ_PERMISSION (see the module's doc)."""
    from django_rq.models import Dashboard

    if site.is_registered(Dashboard):
        site.unregister(Dashboard)
    site.register(Dashboard, _rq_dashboard_admin())
