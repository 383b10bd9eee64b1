from django.contrib import admin

from approvals.models import Document, PublishedSummary, Review


class ReviewInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Review
    extra = 0
    fields = ("round", "summary", "decision", "reviewer", "comment", "created_at", "decided_at", "expires_at")
    readonly_fields = fields
    can_delete = False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "submitter", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("title", "text")
    readonly_fields = ("execution_id", "status", "status_detail", "created_at", "updated_at")
    inlines = (ReviewInline,)


@admin.register(PublishedSummary)
class PublishedSummaryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("document", "reviewer", "published_at")
    readonly_fields = ("document", "review", "text", "reviewer", "published_at")
