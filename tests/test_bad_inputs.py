"""Bad input, as an attacker or a careless client sends it, against the API, the pages and the
admin: each case answers its status and error (never a 500) and changes nothing.

Runs on SQLite and on PostgreSQL (`make test` runs this module on both): NUL characters, lone
surrogates, non-finite numbers and deep nesting are refused differently by the two databases,
and here they must be refused before either sees them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from api.models import ApiToken, IdempotencyRecord
from api.services import token_create
from approvals import workflows
from approvals.apps import REVIEWERS_GROUP
from approvals.models import Document, PublishedSummary, Review
from approvals.services import document_submit
from durable.models import Execution, HistoryEvent, Operation
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db
TEXT = "The ferry timetable changes in May. Boats leave every forty minutes. Night crossings end."
HTMX = {"HTTP_HX_REQUEST": "true"}


def nested(depth: int, leaf: Any = 1, kind: str = "dict") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value} if kind == "dict" else [value]
    return value


def raw_nested(depth: int) -> str:
    return '{"title": "t", "text": "t", "metadata": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


@dataclass
class World:
    """What the cases act on: a document awaiting review, people, tokens, clients."""

    document: Document
    review: Review
    submitter_token: str
    reviewer_token: str
    api: Client
    reviewer: Client
    staff: Client
    superuser: Client
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def world(db, settings) -> World:
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_ALLOW_HTTP": False,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": False,
    }
    users = get_user_model().objects
    submitter = users.create_user("submitter")
    reviewer = users.create_user("reviewer", is_staff=True)  # a reviewer who may open the admin
    Group.objects.get(name=REVIEWERS_GROUP).user_set.add(reviewer)
    superuser = users.create_superuser("root", "root@example.com", password=None)
    scopes = ["documents:submit", "executions:read", "callbacks:complete"]
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(title="Ferries", text=TEXT, submitter=submitter)
        runner.wait_for_callback(str(document.execution_id))
    clients = {}
    for name, user in (("reviewer", reviewer), ("superuser", superuser)):
        clients[name] = Client()
        clients[name].force_login(user)
    return World(
        document=document,
        review=Review.objects.get(document=document),
        submitter_token=token_create(owner=submitter, name="s", scopes=scopes).plaintext,
        reviewer_token=token_create(owner=reviewer, name="r", scopes=scopes).plaintext,
        api=Client(),
        reviewer=clients["reviewer"],
        staff=clients["reviewer"],
        superuser=clients["superuser"],
    )


def fingerprint() -> str:
    """Everything a bad request must not change (tokens' last use aside)."""
    rows = [
        list(Document.objects.order_by("pk").values_list("title", "text", "metadata", "status", "status_detail")),
        list(Review.objects.order_by("pk").values_list("callback_id", "decision", "reviewer", "comment")),
        list(PublishedSummary.objects.values_list("pk")),
        list(Execution.objects.order_by("pk").values_list("pk", "status", "result")),
        list(Operation.objects.order_by("pk").values_list("operation_id", "status", "result", "error")),
        HistoryEvent.objects.count(),
        list(IdempotencyRecord.objects.values_list("key")),
        list(ApiToken.objects.order_by("pk").values_list("key_id", "revoked_at")),
        get_user_model().objects.count(),
    ]
    return hashlib.sha256(json.dumps(rows, default=str, ensure_ascii=True).encode()).hexdigest()


@dataclass(frozen=True)
class Case:
    name: str
    who: str  # submitter, reviewer (API tokens), anonymous; page / admin clients: reviewer, staff, superuser
    method: str
    path: str  # may name {callback}, {document}, {review}, {execution}, {public}
    status: int
    code: str  # the API's error code; for pages, a phrase the answer must contain ("" for none)
    json: Any = None
    raw: str | bytes | None = None
    data: Any = None
    headers: dict[str, str] | None = None
    htmx: bool = False


def api(name, path, status, code, *, method="POST", who="submitter", **kw) -> Case:
    return Case(name, who, method, path, status, code, **kw)


def doc(**fields: Any) -> dict[str, Any]:
    return {"title": "A title", "text": "Some text.", **fields}


# ---- The API -----------------------------------------------------------------------------------
DOCS = "/api/documents"
SUCCEED = "/api/callbacks/{callback}/succeed"
FAIL = "/api/callbacks/{callback}/fail"
UNKNOWN = "/api/callbacks/unknownCallbackId123/succeed"
V = ("validation_error", 422)

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E999"]
BAD_TEXT = {
    "nul": "a\u0000b",
    "lone-high-surrogate": "\ud800",
    "lone-low-surrogate": "x\udfff",
    "reversed-pair": "\udc00\ud800",
}

API_CASES: list[Case] = []
for literal in NON_FINITE:
    API_CASES += [
        api(
            f"metadata {literal}",
            DOCS,
            422,
            "validation_error",
            raw=f'{{"title": "t", "text": "t", "metadata": {{"n": {literal}}}}}',
        ),
        api(
            f"metadata list {literal}",
            DOCS,
            422,
            "validation_error",
            raw=f'{{"title": "t", "text": "t", "metadata": {{"n": [1, {literal}]}}}}',
        ),
        api(
            f"succeed result {literal}",
            SUCCEED,
            422,
            "validation_error",
            raw=f'{{"result": {literal}}}',
            who="reviewer",
        ),
        api(f"succeed unknown id {literal}", UNKNOWN, 422, "validation_error", raw=f'{{"result": {{"x": {literal}}}}}'),
        api(
            f"fail data {literal}",
            FAIL,
            422,
            "validation_error",
            raw=f'{{"error": {{"data": {literal}}}}}',
            who="reviewer",
        ),
    ]
for label, bad in BAD_TEXT.items():
    API_CASES += [
        api(f"title {label}", DOCS, 422, "validation_error", json=doc(title=f"T {bad}")),
        api(f"text {label}", DOCS, 422, "validation_error", json=doc(text=f"Text {bad}")),
        api(f"metadata value {label}", DOCS, 422, "validation_error", json=doc(metadata={"k": bad})),
        api(f"metadata key {label}", DOCS, 422, "validation_error", json=doc(metadata={bad: 1})),
        api(f"metadata deep {label}", DOCS, 422, "validation_error", json=doc(metadata={"a": [{"b": [bad]}]})),
        api(f"callback_url {label}", DOCS, 422, "validation_error", json=doc(callback_url=f"https://ex{bad}.com/")),
        api(f"succeed result {label}", SUCCEED, 422, "validation_error", json={"result": bad}, who="reviewer"),
        api(
            f"succeed decision comment {label}",
            SUCCEED,
            422,
            "validation_error",
            json={"result": {"decision": "rejected", "comment": bad}},
            who="reviewer",
        ),
        api(f"succeed unknown id {label}", UNKNOWN, 422, "validation_error", json={"result": bad}),
        api(f"fail message {label}", FAIL, 422, "validation_error", json={"error": {"message": bad}}, who="reviewer"),
        api(f"fail type {label}", FAIL, 422, "validation_error", json={"error": {"type": bad}}, who="reviewer"),
        api(
            f"fail unknown id {label}",
            "/api/callbacks/nope/fail",
            422,
            "validation_error",
            json={"error": {"message": bad}},
        ),
    ]
API_CASES += [
    api("metadata 33 levels", DOCS, 422, "validation_error", json=doc(metadata=nested(32))),
    api("metadata 200 lists", DOCS, 422, "validation_error", json=doc(metadata={"a": nested(200, kind="list")})),
    api("metadata 2100 levels", DOCS, 422, "validation_error", raw=raw_nested(2100)),
    api("metadata 5000 levels", DOCS, 422, "validation_error", raw=raw_nested(5000)),
    api(
        "result 2100 levels",
        SUCCEED,
        422,
        "validation_error",
        raw='{"result": ' + "[" * 2100 + "]" * 2100 + "}",
        who="reviewer",
    ),
    api("result 40 levels", UNKNOWN, 422, "validation_error", json={"result": nested(40)}),
    api("not JSON", DOCS, 400, "invalid_json", raw="{title: t}"),
    api("truncated JSON", DOCS, 400, "invalid_json", raw='{"title": "t", "text": '),
    api("not UTF-8", DOCS, 400, "invalid_json", raw=b'{"title": "\xff\xfe", "text": "t"}'),
    api("UTF-8 encoded surrogate", DOCS, 422, "validation_error", raw=b'{"title": "\xed\xa0\x80", "text": "t"}'),
    api("a list body", DOCS, 422, "validation_error", json=[doc()]),
    api("unknown field", DOCS, 422, "validation_error", json=doc(owner="root")),
    api("empty title", DOCS, 422, "validation_error", json=doc(title="")),
    api("blank title", DOCS, 422, "validation_error", json=doc(title="   ")),
    api("title too long", DOCS, 422, "validation_error", json=doc(title="t" * 201)),
    api("title a number", DOCS, 422, "validation_error", json=doc(title=5)),
    api("title null", DOCS, 422, "validation_error", json=doc(title=None)),
    api("text missing", DOCS, 422, "validation_error", json={"title": "t"}),
    api("metadata a list", DOCS, 422, "validation_error", json=doc(metadata=[1, 2])),
    api("metadata too large", DOCS, 413, "metadata_too_large", json=doc(metadata={"k": "x" * 20000})),
    api("callback_url hex", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://0x7f000001/hook")),
    api("callback_url decimal", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://2130706433/hook")),
    api("callback_url short", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://127.1/hook")),
    api("callback_url octal", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://0177.0.0.1/hook")),
    api("callback_url zero", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://0/hook")),
    api("callback_url localhost.", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://localhost./hook")),
    api("callback_url CGNAT", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://100.64.0.1/hook")),
    api("callback_url site-local", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://[fec0::1]/hook")),
    api(
        "callback_url mapped", DOCS, 422, "invalid_callback_url", json=doc(callback_url="https://[::ffff:7f00:1]/hook")
    ),
    api("callback_url http", DOCS, 422, "invalid_callback_url", json=doc(callback_url="http://example.com/hook")),
    api("idempotency key empty", DOCS, 400, "invalid_idempotency_key", json=doc(), headers={"Idempotency-Key": ""}),
    api(
        "idempotency key long", DOCS, 400, "invalid_idempotency_key", json=doc(), headers={"Idempotency-Key": "k" * 256}
    ),
    api("idempotency key NUL", DOCS, 400, "invalid_idempotency_key", json=doc(), headers={"Idempotency-Key": "a\x00b"}),
    api("no token", DOCS, 401, "not_authenticated", json=doc(), who="anonymous"),
    api(
        "malformed token",
        DOCS,
        401,
        "invalid_token",
        json=doc(),
        headers={"Authorization": "Bearer dtk_x"},
        who="anonymous",
    ),
    api(
        "NUL in token",
        DOCS,
        401,
        "invalid_token",
        json=doc(),
        headers={"Authorization": "Bearer dtk_a\x00_b"},
        who="anonymous",
    ),
    api("callback id NUL", "/api/callbacks/a%00b/succeed", 422, "validation_error", json={"result": "x"}),
    api("callback id dots", "/api/callbacks/a..b/succeed", 422, "validation_error", json={"result": "x"}),
    api("callback id too long", "/api/callbacks/" + "a" * 65 + "/fail", 422, "validation_error", json={}),
    api("callback id unicode", "/api/callbacks/%C2%B2/heartbeat", 422, "validation_error"),
    api("heartbeat unknown", "/api/callbacks/unknown/heartbeat", 404, "callback_not_found"),
    api("succeed too large", UNKNOWN, 413, "payload_too_large", json={"result": "x" * 300_000}),
    api("review decided by its submitter", SUCCEED, 403, "not_a_reviewer", json={"result": {"decision": "approved"}}),
    api("review failed by its submitter", FAIL, 403, "not_a_reviewer", json={}),
    api(
        "review: not a decision",
        SUCCEED,
        422,
        "invalid_decision",
        json={"result": {"decision": "maybe"}},
        who="reviewer",
    ),
    api(
        "review: revise without feedback",
        SUCCEED,
        422,
        "invalid_decision",
        json={"result": {"decision": "revise"}},
        who="reviewer",
    ),
    api("documents limit 0", DOCS + "?limit=0", 422, "validation_error", method="GET"),
    api("documents limit 101", DOCS + "?limit=101", 422, "validation_error", method="GET"),
    api("documents limit superscript", DOCS + "?limit=%C2%B2", 422, "validation_error", method="GET"),
    api("documents limit 25 digits", DOCS + "?limit=1234567890123456789012345", 422, "validation_error", method="GET"),
    api("documents offset -1", DOCS + "?offset=-1", 422, "validation_error", method="GET"),
    api(
        "documents offset 25 digits", DOCS + "?offset=1234567890123456789012345", 422, "validation_error", method="GET"
    ),
    api("documents status bogus", DOCS + "?status=bogus", 422, "validation_error", method="GET"),
    api("documents status NUL", DOCS + "?status=%00", 422, "validation_error", method="GET"),
    api("documents created_after NUL", DOCS + "?created_after=%00", 422, "validation_error", method="GET"),
    api(
        "documents created_after year 99999",
        DOCS + "?created_after=99999-01-01T00:00:00",
        422,
        "validation_error",
        method="GET",
    ),
    api("documents created_before garbage", DOCS + "?created_before=yesterday", 422, "validation_error", method="GET"),
    api("document id not a uuid", "/api/documents/12", 422, "validation_error", method="GET"),
    api("document id NUL", "/api/documents/%00", 422, "validation_error", method="GET"),
    api("another owner's document", "/api/documents/{public}", 404, "not_found", method="GET", who="reviewer"),
    api("execution id NUL", "/api/executions/%00", 422, "validation_error", method="GET"),
    api(
        "another owner's execution",
        "/api/executions/{execution}/history",
        404,
        "not_found",
        method="GET",
        who="reviewer",
    ),
    api(
        "history flag garbage",
        "/api/executions/{execution}/history?include_execution_data=%00",
        422,
        "validation_error",
        method="GET",
    ),
    api("HEAD on a POST endpoint", "/api/callbacks/x/succeed", 405, "method_not_allowed", method="HEAD"),
    api("PUT on documents", DOCS, 405, "method_not_allowed", method="PUT", json=doc()),
    api("unknown path", "/api/nothing/here", 404, "not_found", method="GET"),
]

# ---- The pages -----------------------------------------------------------------------------------
PAGE_CASES = [
    Case("queue shown superscript", "reviewer", "GET", "/queue/?shown=%C2%B2", 200, "Review queue"),
    Case("queue shown 25 digits", "reviewer", "GET", "/queue/?shown=1234567890123456789012345", 200, "Review queue"),
    Case("queue shown mixed", "reviewer", "GET", "/queue/?shown=1,%C2%B2,-3,1e5,%00,{review}", 200, "Review queue"),
    Case("queue shown arabic digits", "reviewer", "GET", "/queue/?shown=%D9%A3", 200, "Review queue"),
    Case("queue shown htmx", "reviewer", "GET", "/queue/?shown=%C2%B2&v=x", 200, "", htmx=True),
    Case("dashboard status NUL", "reviewer", "GET", "/?status=%00", 200, "Dashboard"),
    Case("dashboard page huge", "reviewer", "GET", "/?page=99999999999999999999999", 200, "Dashboard"),
    Case("dashboard page NUL", "reviewer", "GET", "/?page=%00", 200, "Dashboard"),
    Case("document page unknown", "reviewer", "GET", "/documents/999999/", 404, "Not found"),
    Case("document page huge id", "reviewer", "GET", "/documents/99999999999999999999999/", 404, "Not found"),
    Case("live poll NUL version", "reviewer", "GET", "/documents/{document}/live/?v=%00", 200, "", htmx=True),
    Case("login loop", "reviewer", "GET", "/accounts/login/?next=/accounts/login/", 302, ""),
    Case("login loop with query", "reviewer", "GET", "/accounts/login/?next=/accounts/login/%3Fnext%3D/", 302, ""),
    Case(
        "decide: not a decision",
        "reviewer",
        "POST",
        "/documents/{document}/reviews/{review}/decide/",
        422,
        "Choose approve",
        data={"decision": "maybe"},
        htmx=True,
    ),
    Case(
        "decide: revise, no comment",
        "reviewer",
        "POST",
        "/documents/{document}/reviews/{review}/decide/",
        422,
        "needs feedback",
        data={"decision": "revise", "comment": " "},
        htmx=True,
    ),
    Case(
        "decide: NUL comment",
        "reviewer",
        "POST",
        "/documents/{document}/reviews/{review}/decide/",
        422,
        "Choose approve",
        data={"decision": "rejected", "comment": "a\x00b"},
        htmx=True,
    ),
    Case(
        "decide: comment too long",
        "reviewer",
        "POST",
        "/documents/{document}/reviews/{review}/decide/",
        422,
        "Choose approve",
        data={"decision": "rejected", "comment": "c" * 5001},
        htmx=True,
    ),
    Case(
        "decide: unknown review",
        "reviewer",
        "POST",
        "/documents/{document}/reviews/999999/decide/",
        404,
        "Not found",
        data={"decision": "approved"},
    ),
    Case("decide: GET", "reviewer", "GET", "/documents/{document}/reviews/{review}/decide/", 405, ""),
    Case(
        "submit: NUL title",
        "reviewer",
        "POST",
        "/documents/new/",
        400,
        "Null characters are not allowed",
        data={"title": "a\x00", "text": "t"},
    ),
    Case(
        "submit: NUL text",
        "reviewer",
        "POST",
        "/documents/new/",
        400,
        "Null characters are not allowed",
        data={"title": "t", "text": "a\x00b"},
    ),
    Case("submit: blank", "reviewer", "POST", "/documents/new/", 400, "has no text", data={"title": "t", "text": "  "}),
    Case(
        "submit: title too long",
        "reviewer",
        "POST",
        "/documents/new/",
        400,
        "at most 200",
        data={"title": "t" * 201, "text": "t"},
    ),
    Case(
        "submit: file with NUL",
        "reviewer",
        "POST",
        "/documents/new/",
        400,
        "contains a NUL",
        data={"title": "t", "file": ("a.txt", b"text\x00more")},
    ),
    Case(
        "submit: file not UTF-8",
        "reviewer",
        "POST",
        "/documents/new/",
        400,
        "not UTF-8",
        data={"title": "t", "file": ("a.txt", b"\xff\xfe")},
    ),
    Case(
        "submit: file with encoded surrogate",
        "reviewer",
        "POST",
        "/documents/new/",
        400,
        "not UTF-8",
        data={"title": "t", "file": ("a.txt", b"\xed\xa0\x80")},
    ),
    Case(
        "submit: not a text file",
        "reviewer",
        "POST",
        "/documents/new/",
        400,
        "Upload a .txt",
        data={"title": "t", "file": ("a.exe", b"MZ")},
    ),
    Case(
        "login: NUL username",
        "anonymous",
        "POST",
        "/accounts/login/",
        200,
        "did not match",
        data={"username": "a\x00", "password": "p"},
    ),
]

# ---- The admin -----------------------------------------------------------------------------------
EXECUTIONS = "/admin/durable/execution/"
DOCUMENTS = "/admin/approvals/document/"
ADMIN_CASES = [
    Case(
        "executions year 99999999999",
        "superuser",
        "GET",
        EXECUTIONS + "?created_at__year=99999999999",
        400,
        "a number a date can hold",
    ),
    Case(
        "executions year superscript",
        "superuser",
        "GET",
        EXECUTIONS + "?created_at__year=%C2%B2",
        400,
        "a number a date can hold",
    ),
    Case(
        "executions year negative",
        "superuser",
        "GET",
        EXECUTIONS + "?created_at__year=-1",
        400,
        "a number a date can hold",
    ),
    Case(
        "executions month 13 digits",
        "superuser",
        "GET",
        EXECUTIONS + "?created_at__year=2026&created_at__month=1234567890123",
        400,
        "a number a date can hold",
    ),
    Case(
        "executions day NUL",
        "superuser",
        "GET",
        EXECUTIONS + "?created_at__year=2026&created_at__month=1&created_at__day=%00",
        400,
        "NUL",
    ),
    Case("executions search NUL", "superuser", "GET", EXECUTIONS + "?q=%00", 400, "NUL"),
    Case(
        "documents year 99999999999",
        "superuser",
        "GET",
        DOCUMENTS + "?created_at__year=99999999999",
        400,
        "a number a date can hold",
    ),
    Case("documents search NUL", "superuser", "GET", DOCUMENTS + "?q=a%00b", 400, "NUL"),
    Case("admin documents status NUL", "superuser", "GET", DOCUMENTS + "?status__exact=%00", 400, "NUL"),
    Case("document add", "superuser", "GET", DOCUMENTS + "add/", 403, ""),
    Case(
        "document edit: NaN metadata",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/change/",
        200,
        "not a finite number",
        data={"title": "Ferries", "metadata": '{"n": NaN}'},
    ),
    Case(
        "document edit: Infinity metadata",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/change/",
        200,
        "not a finite number",
        data={"title": "Ferries", "metadata": "[Infinity]"},
    ),
    Case(
        "document edit: 1e400 metadata",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/change/",
        200,
        "not a finite number",
        data={"title": "Ferries", "metadata": '{"n": 1e400}'},
    ),
    Case(
        "document edit: surrogate metadata",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/change/",
        200,
        "lone surrogate",
        data={"title": "Ferries", "metadata": '{"n": "\\ud800"}'},
    ),
    Case(
        "document edit: NUL metadata",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/change/",
        200,
        "NUL character",
        data={"title": "Ferries", "metadata": '{"n": "\\u0000"}'},
    ),
    Case(
        "document edit: deep metadata",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/change/",
        200,
        "nested deeper",
        data={"title": "Ferries", "metadata": json.dumps(nested(40))},
    ),
    Case(
        "document edit: NUL title",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/change/",
        200,
        "Null characters are not allowed",
        data={"title": "a\x00", "metadata": "{}"},
    ),
    Case(
        "document delete while running",
        "superuser",
        "POST",
        DOCUMENTS + "{document}/delete/",
        403,
        "",
        data={"post": "yes"},
    ),
    Case(
        "callback page, real id, no permission",
        "staff",
        "GET",
        EXECUTIONS + "{execution}/callbacks/{callback}/succeed/",
        403,
        "",
    ),
    Case(
        "callback page, made-up id, no permission",
        "staff",
        "GET",
        EXECUTIONS + "{execution}/callbacks/madeUpCallback/succeed/",
        403,
        "",
    ),
    Case(
        "callback fail page, made-up id",
        "staff",
        "POST",
        EXECUTIONS + "{execution}/callbacks/madeUp/fail/",
        403,
        "",
        data={"confirm": "yes"},
    ),
    Case(
        "execution page, made-up id",
        "staff",
        "GET",
        EXECUTIONS + "00000000-0000-4000-8000-000000000000/change/",
        403,
        "",
    ),
    Case("stop, no permission", "staff", "POST", EXECUTIONS + "{execution}/stop/", 403, "", data={"confirm": "yes"}),
    Case("rq dashboard, staff reviewer", "staff", "GET", "/admin/django_rq/dashboard/", 403, ""),
    Case("rq queue jobs, staff reviewer", "staff", "GET", "/admin/django_rq/dashboard/queues/0/", 403, ""),
    Case(
        "rq empty queue, staff reviewer",
        "staff",
        "POST",
        "/admin/django_rq/dashboard/queues/0/empty/",
        403,
        "",
        data={"post": "yes"},
    ),
    Case("rq stats json, staff reviewer", "staff", "GET", "/admin/django_rq/dashboard/stats.json", 403, ""),
]

ALL_CASES = API_CASES + PAGE_CASES + ADMIN_CASES


def test_the_table_is_large_enough():
    assert len(ALL_CASES) >= 150
    assert len({case.name for case in ALL_CASES}) == len(ALL_CASES)


def _path(case: Case, world: World) -> str:
    return case.path.format(
        callback=world.review.callback_id,
        document=world.document.pk,
        review=world.review.pk,
        execution=world.document.execution_id,
        public=world.document.public_id,
    )


def _send(case: Case, world: World):
    path = _path(case, world)
    headers = dict(case.headers or {})
    extra = HTMX if case.htmx else {}
    if case.path.startswith("/api/"):
        token = {"submitter": world.submitter_token, "reviewer": world.reviewer_token}.get(case.who)
        if token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {token}"
        client = world.api
        if case.method == "GET":
            return client.get(path, headers=headers)
        if case.method == "HEAD":
            return client.head(path, headers=headers)
        body = case.raw if case.raw is not None else ("" if case.json is None else json.dumps(case.json))
        return client.generic(case.method, path, body, content_type="application/json", headers=headers)
    client = {"reviewer": world.reviewer, "staff": world.staff, "superuser": world.superuser}.get(case.who) or Client()
    if case.method == "GET":
        return client.get(path, headers=headers, **extra)
    data = dict(case.data or {})
    if "file" in data:
        name, content = data["file"]
        data["file"] = SimpleUploadedFile(name, content, content_type="text/plain")
    return client.post(path, data, headers=headers, **extra)


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.name for case in ALL_CASES])
def test_bad_input_is_refused_and_changes_nothing(world, case):
    before = fingerprint()
    response = _send(case, world)
    assert response.status_code == case.status, (response.status_code, response.content[:500])
    if case.path.startswith("/api/"):
        if case.method == "HEAD":
            assert response.content == b""
        else:
            body = response.json()
            assert set(body) == {"error"}
            assert body["error"]["code"] == case.code
            assert body["error"]["message"]
    elif case.code:
        assert case.code in response.content.decode(), response.content.decode()[:2000]
    assert fingerprint() == before, "the request changed something"
