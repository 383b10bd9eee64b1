"""Documents in Django admin: a record of what happened, not a place to rewrite it.

A document's text and submitter never change here, reviews are never added or edited by hand
(decisions come from reviewers, through the review pages or the API), a decided document is
read-only, and deleting one takes a permission of its own and a document whose work is over.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest

from approvals.errors import InvalidValueError
from approvals.models import AuditEntry, Document, PublishedSummary, Review
from approvals.validators import check_json, check_text

PURGE_PERMISSION = "approvals.purge_document"


class ReviewInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Review
    extra = 0
    fields = (
        "round",
        "summary",
        "decision",
        "reviewer",
        "comment",
        "created_at",
        "decided_at",
        "expires_at",
        "claimed_by",
        "claimed_at",
    )
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditEntryInline(admin.TabularInline):  # type: ignore[type-arg]
    """The document's history, as recorded (services.document_record_event): read-only."""

    model = AuditEntry
    extra = 0
    fields = ("created_at", "kind", "actor", "detail")
    readonly_fields = fields
    can_delete = False
    ordering = ("created_at", "pk")
    verbose_name_plural = "history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AsciiJSONField(forms.JSONField):
    """Shows JSON with non-ASCII escaped, so a bad value sent back (a lone surrogate) can be
    shown with its error instead of failing to encode the page."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, cls=self.encoder)


class DocumentAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Document
        fields = ("title", "metadata")
        field_classes = {"metadata": AsciiJSONField}

    def clean_title(self) -> str:
        return str(self._checked(self.cleaned_data["title"], check_text))

    def clean_metadata(self) -> Any:
        return self._checked(self.cleaned_data["metadata"], check_json)

    @staticmethod
    def _checked(value: Any, check: Any) -> Any:
        try:
            check(value, [])
        except InvalidValueError as exc:
            raise forms.ValidationError(str(exc).replace("the value", "This value", 1)) from None
        return value


def is_decided(document: Document) -> bool:
    return document.is_final or document.reviews.exclude(decision="").exists()


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = DocumentAdminForm
    list_display = ("title", "submitter", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("title", "text")
    fields = (
        "title",
        "metadata",
        "text",
        "submitter",
        "status",
        "status_detail",
        "callback_url",
        "execution_id",
        "execution_status",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields[2:]
    inlines = (ReviewInline, AuditEntryInline)
    actions = None  # no bulk delete: one finished document at a time, from its page

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and is_decided(obj):
            return self.fields  # decided work is a record
        return self.readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # documents are submitted (the pages, the API), which starts their workflow

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and is_decided(obj):
            return False
        return super().has_change_permission(request, obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # A document's summary goes with it; on its own it cannot be deleted (see below).
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(PublishedSummary._meta.verbose_name)
        perms_needed.discard(AuditEntry._meta.verbose_name)  # its history goes with it too
        return deleted, counts, perms_needed, protected

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not request.user.has_perm(PURGE_PERMISSION):
            return False
        return obj is None or obj.is_final


@admin.register(PublishedSummary)
class PublishedSummaryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("document", "reviewer", "published_at")
    readonly_fields = ("document", "review", "text", "reviewer", "published_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleted with its document, by whoever may purge documents


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every document's history in one list, searchable; entries are never added, changed or
    deleted by hand (they go with their document when it is purged)."""

    list_display = ("created_at", "document", "kind", "actor", "detail")
    list_filter = ("kind", "created_at")
    search_fields = ("document__title", "detail", "actor__username")
    list_select_related = ("document", "actor")
    readonly_fields = ("document", "kind", "actor", "detail", "created_at")
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
