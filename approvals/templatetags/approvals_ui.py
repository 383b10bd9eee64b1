"""Small presentation helpers for the reviewers' UI."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from approvals.alignment import Change

register = template.Library()


@register.filter
def age(moment: datetime | None) -> str:
    """ "just now" under a minute, else "5 minutes ago" (the largest unit only)."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


@register.filter
def waited(moment: datetime | None) -> str:
    """How long something has waited, read after a "Waiting" label: "2 minutes", "under a minute"."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "under a minute"
    return str(timesince(moment, depth=1))


@register.filter
def moment(value: datetime | None) -> str:
    """A date with its year, time and zone: "2 Dec 2026, 17:05 UTC" (the server's fallback;
    static/js/app.js rewrites `time[data-local]` in the reader's own time zone)."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}" data-local>{} {}, {} UTC</time>',
        utc.isoformat(),
        utc.day,
        utc.strftime("%b %Y"),
        utc.strftime("%H:%M"),
    )


@register.filter
def diff_html(changes: list[Change]) -> str:
    """A word-level diff as <ins>/<del>, each announced in words to screen readers."""
    parts: list[str] = []
    previous = ""
    for change in changes:
        # A run cut from the end of the old text has no space before it in the new one.
        if change.kind != "same" and previous and not previous[-1].isspace():
            parts.append(" ")
        previous = change.text
        if change.kind == "added":
            parts.append(format_html('<ins><span class="sr-only">added: </span>{}</ins>', change.text))
        elif change.kind == "removed":
            parts.append(format_html('<del><span class="sr-only">removed: </span>{}</del>', change.text))
        else:
            parts.append(escape(change.text))
    return mark_safe("".join(parts))  # noqa: S308 - every part escaped above
