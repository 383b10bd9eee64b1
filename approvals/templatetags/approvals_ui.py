"""Small presentation helpers for the reviewers' UI."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def age(moment: datetime | None) -> str:
    """ "just now" under a minute, else "5 minutes ago" (the largest unit only)."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"
