"""Request types of the reviewers' UI, so views are type-checked without `type: ignore`."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request through django-htmx's middleware: `request.htmx` says whether htmx sent it."""

    htmx: HtmxDetails


class AuthenticatedRequest(HtmxHttpRequest):
    """A request of a logged-in user (the views behind `login_required`)."""

    user: User
