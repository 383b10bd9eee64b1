"""The reviewers' UI: dashboard, live review queue, document pages and submitting from the browser.

Pages are whole documents; htmx swaps in the partials they are built from (`page.html#partial`).
Polling endpoints answer 204 ("nothing changed", no swap) after one cheap query, and 286 ("stop
polling") with the last update once a document is final.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from approvals import conf, selectors, services
from approvals.alignment import align, diff_words
from approvals.errors import ApprovalError, InvalidDecisionError, InvalidValueError, ReviewClaimedError
from approvals.forms import DecisionForm, DocumentForm
from approvals.http import AuthenticatedRequest
from approvals.models import FINAL_STATUSES, Decision, Document, DocumentStatus, Review
from durable.client import ExecutionStatus

View = Callable[..., HttpResponse]


def _progress(document: Document, rounds: int) -> list[tuple[str, str]]:
    """The workflow's stages as (label, state), state one of done, current, todo, stopped."""
    status = document.status
    round_label = f" (round {rounds})" if rounds > 1 else ""
    first = f"Revising{round_label}" if rounds > 1 or status == DocumentStatus.REVISING else "Summarizing"
    labels = [first, f"Awaiting review{round_label}", "Publishing", "Published"]
    submitted = [("Submitted", "done")]
    if status == DocumentStatus.PUBLISHED:
        return submitted + [(label, "done") for label in labels]
    if status in (DocumentStatus.REJECTED, DocumentStatus.EXPIRED, DocumentStatus.STOPPED, DocumentStatus.TIMED_OUT):
        return [
            *submitted,
            (labels[0], "done"),
            (labels[1], "done"),
            (document.get_status_display().capitalize(), "stopped"),
        ]
    if status == DocumentStatus.FAILED:
        return [*submitted, (f"{labels[0]}: failed", "stopped")]
    position = {DocumentStatus.AWAITING_REVIEW: 1, DocumentStatus.PUBLISHING: 2}.get(status, 0)  # type: ignore[call-overload]
    return submitted + [
        (label, "done" if i < position else "current" if i == position else "todo") for i, label in enumerate(labels)
    ]


def _round_in_progress(document: Document, current: Review | None) -> int:
    if current is None:
        return 1
    return current.round + 1 if document.status == DocumentStatus.REVISING else current.round


def reviewer_required(view: View) -> View:
    """Only members of the reviewers' group (or anyone holding approvals.decide_review)."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not selectors.user_is_reviewer(user=request.user):
            raise PermissionDenied("Only reviewers may see the review queue and decide reviews.")
        return view(request, *args, **kwargs)

    return wrapper


def _visible_document(request: AuthenticatedRequest, pk: int) -> Document:
    """The document, if the user submitted it or reviews; 404 otherwise (ids are guessable)."""
    return get_object_or_404(selectors.document_list_visible(user=request.user), pk=pk)


@require_GET
@login_required
def dashboard(request: AuthenticatedRequest) -> HttpResponse:
    version = selectors.document_list_version(user=request.user)
    if request.htmx and request.GET.get("v") == version:
        return HttpResponse(status=204)
    status = request.GET.get("status", "")
    documents = selectors.document_list_visible(user=request.user)
    if status in DocumentStatus.values:
        documents = documents.filter(status=status)
    else:
        status = ""
    page = Paginator(documents.order_by("-created_at", "-pk"), 20).get_page(request.GET.get("page"))
    counts = selectors.document_count_by_status(user=request.user)
    context = {
        "counts": counts,
        "total": sum(n for _, _, n in counts),
        "page": page,
        "status": status,
        "is_reviewer": selectors.user_is_reviewer(user=request.user),
        "version": version,
        "poll_url": f"{request.path}?{urlencode({'status': status, 'page': page.number})}",
    }
    template = "approvals/dashboard.html#board" if request.htmx else "approvals/dashboard.html"
    return render(request, template, context)


@require_GET
@reviewer_required
def queue(request: AuthenticatedRequest) -> HttpResponse:
    user = request.user
    version = selectors.review_queue_version(user=user)
    if request.htmx and request.GET.get("v") == version:
        return HttpResponse(status=204)
    query = selectors.QueueQuery.from_params(request.GET)
    matching = selectors.review_search_queue(user=user, query=query)
    page = Paginator(matching, selectors.QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    reviews = list(page.object_list)
    for review in reviews:
        review.claim_live = selectors.review_claim_is_live(review=review)  # type: ignore[attr-defined]
    # Rows the page shows that left the queue stay, marked decided, so nothing jumps away unseen.
    shown = _shown_ids(request.GET.get("shown", ""))
    gone = shown - {review.pk for review in reviews}
    closed = Review.objects.filter(pk__in=gone).select_related("document", "reviewer").order_by("-created_at")
    params = {"order": query.order, "q": query.search, "round": query.round or "", "submitter": query.submitter}
    kept = {key: value for key, value in params.items() if value and value != "newest"}
    context = {
        "reviews": reviews,
        "closed": list(closed),
        "version": version,
        "page": page,
        "query": query,
        "orders": [(key, words) for key, (words, _) in selectors.QUEUE_ORDERS.items()],
        "submitters": selectors.review_queue_submitters(user=user),
        "open_count": selectors.review_queue_count(user=user),
        "max_rounds": int(conf.get("MAX_ROUNDS")),
        "query_string": urlencode(kept),
        "poll_url": f"{request.path}?{urlencode({**kept, 'page': page.number})}",
    }
    template = "approvals/queue.html#queue" if request.htmx else "approvals/queue.html"
    return render(request, template, context)


SHOWN_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and within a database integer


def _shown_ids(value: str) -> set[int]:
    """Review ids the page says it shows (at most 200); anything else is ignored."""
    return {int(x) for x in value.split(",")[:200] if SHOWN_ID.fullmatch(x)}


def _live_version(document: Document, execution_version: str) -> str:
    return f"{document.updated_at.timestamp()}:{execution_version}"


def _parts(document: Document, review: Review | None) -> list[dict[str, Any]]:
    """The parts a long document's summary was combined from: what each said, and the passage of
    the source it covers (its character range, opening and closing words)."""
    if review is None or not review.parts:
        return []
    text, shown = document.text, []
    for part in review.parts:
        start, end = int(part["start"]), int(part["end"])
        passage = text[start:end].strip()
        shown.append(
            {
                "first": start + 1,
                "last": end,
                "opening": passage[:80].rsplit(" ", 1)[0] if len(passage) > 80 else passage,
                "closing": passage[-80:].split(" ", 1)[-1] if len(passage) > 80 else "",
                "text": str(part.get("text", "")),
            }
        )
    return shown


# The document page polls every POLL_SECONDS; while a decision is on its way through the workflow
# (decided, not yet final) every FAST_POLL_SECONDS, so the outcome shows as soon as it is reached.
POLL_SECONDS = 1.0
FAST_POLL_SECONDS = 0.25


def _poll_every(document: Document, current: Review | None, final: bool) -> str:
    in_flight = document.status in (DocumentStatus.PUBLISHING, DocumentStatus.REVISING) or (
        current is not None and not current.is_open and not final
    )
    seconds = FAST_POLL_SECONDS if in_flight else POLL_SECONDS
    return f"{seconds:g}s"


def _execution_admin_url(request: AuthenticatedRequest, document: Document) -> str:
    """The execution's page in the admin, for staff only (reviewers see the progress in words)."""
    if not (request.user.is_staff and document.execution_id):
        return ""
    try:
        return reverse("admin:durable_execution_change", args=[document.execution_id])
    except NoReverseMatch:  # the engine's admin is not installed in this project
        return ""


def _reading(document: Document, current: Review | None, earlier: list[Review]) -> dict[str, Any]:
    """The summary beside its source (sentences linked both ways) and the changes from the
    round before."""
    if current is None:
        return {"alignment": None, "changes": None}
    previous = earlier[-1] if earlier else None
    return {
        "alignment": align(document.text, current.summary),
        "changes": diff_words(previous.summary, current.summary) if previous else None,
        "previous": previous,
    }


def _live_context(request: AuthenticatedRequest, document: Document, **extra: Any) -> dict[str, Any]:
    execution, timeline = selectors.execution_get_timeline(execution_id=document.execution_id)
    reviews = list(selectors.review_list_of_document(document=document))
    current = reviews[-1] if reviews else None
    execution_status = execution.status if execution else ""
    final = document.status in FINAL_STATUSES and execution_status != ExecutionStatus.RUNNING
    user = request.user
    is_reviewer = selectors.user_is_reviewer(user=user)
    can_decide = (
        current is not None
        and current.is_open
        and document.status == DocumentStatus.AWAITING_REVIEW
        and is_reviewer
        and document.submitter_id != user.pk
    )
    claim_live = current is not None and selectors.review_claim_is_live(review=current)
    return {
        "document": document,
        "claim_live": claim_live,
        "claim_expires": selectors.review_claim_expires_at(review=current) if claim_live and current else None,
        "claimed_by_other": claim_live and current is not None and current.claimed_by_id != user.pk,
        "events": _events(document),
        **_queue_neighbours(user, current, is_reviewer),
        "execution": execution,
        "timeline": timeline,
        "current": current,
        "earlier": reviews[:-1],
        "final": final,
        "can_decide": can_decide,
        "is_reviewer": is_reviewer,
        "progress": _progress(document, _round_in_progress(document, current)),
        "version": _live_version(
            document, f"{execution.updated_at.timestamp()}:{execution.status}" if execution else ""
        ),
        "form": DecisionForm(),
        "parts": _parts(document, current),
        "published": getattr(document, "published", None) if document.status == DocumentStatus.PUBLISHED else None,
        "poll_every": _poll_every(document, current, final),
        "execution_admin_url": _execution_admin_url(request, document),
        **_reading(document, current, reviews[:-1]),
        **_rounds_context(current),
        "reminders": selectors.document_list_reminders(document_id=document.pk),
        **extra,
    }


def _rounds_context(current: Review | None) -> dict[str, Any]:
    """Which round of how many the current review is; at the last one, a revision request
    rejects the document, and the page says so before the click."""
    max_rounds = int(conf.get("MAX_ROUNDS"))
    return {"max_rounds": max_rounds, "last_round": current is not None and current.round >= max_rounds}


def _events(document: Document) -> list[Any]:
    events = list(selectors.document_list_events(document_id=document.pk))
    for event in events:
        words = selectors.EVENT_WORDS.get(event.kind, event.kind.replace("_", " ").capitalize())
        event.words = words  # type: ignore[attr-defined]
    return events


def _queue_neighbours(user: Any, current: Review | None, is_reviewer: bool) -> dict[str, Any]:
    """The documents before and after this one in the queue (oldest first), for j and k."""
    if not is_reviewer or current is None:
        return {}
    return selectors.review_queue_neighbours(user=user, review=current)


@require_GET
@login_required
def document_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    document = _visible_document(request, pk)
    context = _live_context(request, document, confirm_claim=request.GET.get("confirm_claim") == "1")
    return render(request, "approvals/document.html", context)


@require_GET
@login_required
def document_live(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """The live part of a document page; polled by htmx while the workflow runs."""
    document = _visible_document(request, pk)
    version = _live_version(document, selectors.execution_get_version(execution_id=document.execution_id))
    if request.GET.get("v") == version:
        return HttpResponse(status=204)
    context = _live_context(request, document)
    response = render(request, "approvals/document.html#live", context)
    if context["final"]:
        return HttpResponseStopPolling(response.content)
    return response


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return f"{text[:1].upper()}{text[1:]}."


@require_POST
@reviewer_required
def review_decide(request: AuthenticatedRequest, pk: int, review_pk: int) -> HttpResponse:
    document = _visible_document(request, pk)
    review = get_object_or_404(Review, pk=review_pk, document=document)
    form = DecisionForm(request.POST)
    error = ""
    status = 200
    confirm_claim = False
    # 422, not 400: django-htmx's debug handler (DEBUG on) replaces the whole page on a 400.
    if not form.is_valid():
        error, status = "Choose approve, reject or request a revision.", 422
    elif (
        form.cleaned_data["decision"] == Decision.REVISE
        and review.round >= int(conf.get("MAX_ROUNDS"))
        and not form.cleaned_data["confirm_last_round"]
        and review.is_open
    ):
        # The last round: a revision request rejects the document. Nothing is decided until the
        # reviewer confirms, and their feedback is carried into the confirmation.
        context = _live_context(request, document, confirm_last_round=True)
        context["form"] = form
        template = "approvals/document.html#live" if request.htmx else "approvals/document.html"
        return render(request, template, context)
    else:
        try:
            services.review_decide(
                review,
                reviewer=request.user,
                decision=form.cleaned_data["decision"],
                comment=form.cleaned_data["comment"],
                start_over=form.cleaned_data["start_over"],
                override_claim=request.POST.get("override_claim") == "yes",
            )
        except ReviewClaimedError as exc:
            # Checked here, not only in the page's script: the form comes back asking to confirm.
            error, status, confirm_claim = f"{_sentence(exc)}", 409, True
        except (InvalidDecisionError, InvalidValueError) as exc:
            error, status = f"{_sentence(exc)} Nothing was changed.", 422
        except ApprovalError as exc:
            error, status = f"{_sentence(exc)} Nothing was changed.", 409
    document.refresh_from_db()
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, "Decision recorded.")
        url = resolve_url("approvals:document", pk=document.pk)
        return redirect(f"{url}?confirm_claim=1" if confirm_claim else url)
    context = _live_context(request, document, error=error, notice="" if error else "Decision recorded.")
    context["confirm_claim"] = confirm_claim
    if error:
        context["form"] = form
    else:
        context["next_review"] = selectors.review_next_in_queue(user=request.user, after=review)
        context["decided_now"] = True
    return render(request, "approvals/document.html#live", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def document_new(request: AuthenticatedRequest) -> HttpResponse:
    form = DocumentForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        document = services.document_submit(
            title=form.cleaned_data["title"],
            text=form.cleaned_data["body"],
            submitter=request.user,
        )
        messages.success(request, "Submitted. The summary appears below as soon as it is ready.")
        return redirect("approvals:document", pk=document.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "approvals/submit.html", {"form": form}, status=status)


class LoginView(auth_views.LoginView):
    """Django's login page; a logged-in user sent back to it (`?next=/accounts/login/`) goes to
    the dashboard instead of Django's redirect-loop error."""

    redirect_authenticated_user = True

    def get_success_url(self) -> str:
        url = super().get_success_url()
        if urlsplit(url).path == resolve_url("login"):
            return str(resolve_url(settings.LOGIN_REDIRECT_URL))
        return url


def login_locked_out(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """django-axes calls this when a username at an address failed too many logins: 429, with
    how long to wait."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    context = {"minutes": max(1, seconds // 60)}
    response = render(request, "429.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


@require_POST
@reviewer_required
def review_claim(request: AuthenticatedRequest, pk: int, review_pk: int) -> HttpResponse:
    """Claim the review (action "claim") or give one's claim up (action "release")."""
    document = _visible_document(request, pk)
    review = get_object_or_404(Review, pk=review_pk, document=document)
    release = request.POST.get("action") == "release"
    error, status = "", 200
    try:
        if release:
            services.review_release(review, reviewer=request.user)
        else:
            services.review_claim(review, reviewer=request.user)
    except ApprovalError as exc:
        error, status = f"{_sentence(exc)} Nothing was changed.", 409
    notice = "" if error else ("Claim released." if release else "Claimed: other reviewers see that you are on it.")
    document.refresh_from_db()
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, notice)
        return redirect("approvals:document", pk=document.pk)
    context = _live_context(request, document, error=error, notice=notice)
    return render(request, "approvals/document.html#live", context, status=status)


# A cell a spreadsheet would read as a formula starts with one of these; such cells get a
# leading apostrophe (OWASP's CSV injection advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


@require_GET
@login_required
def audit_export(request: AuthenticatedRequest) -> HttpResponse | StreamingHttpResponse:
    """The audit trail as CSV: staff get every document's, others those they may see; one
    document's with `?document=<id>`."""
    entries = selectors.audit_list_entries(user=request.user)
    document_id = request.GET.get("document", "")
    if document_id:
        if not SHOWN_ID.fullmatch(document_id):
            return HttpResponse("document must be a document's number", status=400, content_type="text/plain")
        entries = entries.filter(document_id=int(document_id))
    response = StreamingHttpResponse(_csv_rows(entries), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    return response


def _csv_rows(entries: Any) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["time", "document_id", "document", "event", "who", "detail"])
    for entry in entries.iterator(chunk_size=500):
        who = entry.actor.get_username() if entry.actor else "system"
        row = [entry.created_at.isoformat(), entry.document_id, entry.document.title, entry.kind, who, entry.detail]
        writer.writerow([_csv_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
