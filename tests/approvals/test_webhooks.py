"""Signed webhooks to a real local HTTP server: signature, SSRF checks, retries with backoff."""

import json
import subprocess
import time

import pytest
from django.contrib.auth import get_user_model

from approvals import workflows
from approvals.errors import CallbackURLError, WebhookDeliveryError, WebhookRefusedError
from approvals.models import Document, Review
from approvals.services import document_submit, review_decide
from approvals.webhooks import (
    Target,
    check_callback_url,
    deliver,
    resolve,
    sign,
    signing_secret,
    verify_signature,
)
from durable.models import HistoryEvent, Operation
from durable.testing import DurableTestRunner
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db
TEXT = "The council approved a budget. It adds evening hours at four branches. Staff will be hired."


@pytest.fixture
def local_webhooks(settings):
    """What the tests (and only they) allow: plain http to loopback."""
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
        "WEBHOOK_TIMEOUT_SECONDS": 5,
    }


@pytest.fixture
def strict(settings):
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_ALLOW_HTTP": False,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": False,
    }


@pytest.fixture
def people():
    from django.contrib.auth.models import Group

    from approvals.apps import REVIEWERS_GROUP

    users = get_user_model().objects
    people = {"submitter": users.create_user("submitter"), "reviewer": users.create_user("reviewer")}
    Group.objects.get(name=REVIEWERS_GROUP).user_set.add(people["reviewer"])
    return people


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://0.0.0.0/hook",
        "https:///no-host",
        "https://example.com:99999/hook",
        # Not globally routable, though in no "private" list: shared (CGNAT), site-local, ...
        "https://100.64.0.1/hook",
        "https://100.127.255.254/hook",
        "https://[fec0::1]/hook",
        "https://[fc00::1]/hook",
        "https://192.0.2.1/hook",  # documentation
        "https://198.18.0.1/hook",  # benchmarking
        "https://240.0.0.1/hook",  # reserved
        "https://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "https://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "https://[::127.0.0.1]/hook",  # IPv4-compatible
        # Numeric host forms, read as browsers and curl read them: all 127.0.0.1 or 0.0.0.0.
        "https://0x7f000001/hook",
        "https://2130706433/hook",
        "https://127.1/hook",
        "https://0177.0.0.1/hook",
        "https://0x7f.0.0.1/hook",
        "https://017700000001/hook",
        "https://0/hook",
        "https://0x0/hook",
        "https://localhost./hook",
        "https://LOCALHOST/hook",
        "https://127.0.0.1./hook",
        "https://10.1/hook",
        "https://192.168.257/hook",
        "https://256.256.256.256/hook",
    ],
)
def test_callback_urls_that_could_reach_inside_are_refused(strict, url):
    with pytest.raises(CallbackURLError):
        check_callback_url(url)


def test_public_https_urls_pass(strict):
    target = check_callback_url("https://hooks.example.com:8443/a/b?x=1")
    assert (target.scheme, target.host, target.port, target.path) == ("https", "hooks.example.com", 8443, "/a/b?x=1")
    assert check_callback_url("https://93.184.215.14/hook").port == 443


def test_a_setting_allows_http_and_private_addresses(local_webhooks):
    assert check_callback_url("http://127.0.0.1:8080/hook").host == "127.0.0.1"
    assert check_callback_url("http://10.0.0.5/hook").port == 80
    with pytest.raises(CallbackURLError):
        check_callback_url("http://0.0.0.0/hook")  # never a real receiver


def test_submit_refuses_a_bad_callback_url_and_stores_nothing(strict, people):
    with pytest.raises(CallbackURLError):
        document_submit(title="t", text=TEXT, submitter=people["submitter"], callback_url="https://10.0.0.1/x")
    assert not Document.objects.exists()


def test_a_receiver_can_verify_the_signature(local_webhooks):
    secret = signing_secret("abc123")
    with WebhookReceiver() as receiver:
        status = deliver(receiver.url, {"hello": "world"}, secret=secret, event="document.published", delivery_id="d1")
    assert status == 200
    (request,) = receiver.received
    timestamp, signature = request.headers["X-Durable-Timestamp"], request.headers["X-Durable-Signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(secret, request.body, timestamp, signature)
    assert json.loads(request.body) == {"hello": "world"}
    assert (request.headers["X-Durable-Event"], request.headers["X-Durable-Delivery"]) == ("document.published", "d1")
    # What a receiver must refuse: another secret, a changed body, a stale or missing timestamp.
    assert not verify_signature(signing_secret("other"), request.body, timestamp, signature)
    assert not verify_signature(secret, request.body + b" ", timestamp, signature)
    assert not verify_signature(secret, request.body, str(int(timestamp) + 1), signature)
    assert not verify_signature(secret, request.body, timestamp, signature, now=int(timestamp) + 301)
    assert not verify_signature(secret, request.body, None, signature)
    old = int(time.time()) - 3600
    assert not verify_signature(secret, request.body, str(old), sign(secret, old, request.body))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A self-signed certificate for localhost, and one for another name, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")

    def make(name: str, san: str) -> tuple[str, str]:
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
                "-addext", f"subjectAltName={san}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return str(cert), str(key)

    return {"localhost": make("localhost", "DNS:localhost"), "other": make("other", "DNS:other.example")}


def test_https_delivery_verifies_the_receivers_certificate(local_webhooks, settings, certificates):
    cert, key = certificates["localhost"]
    secret = signing_secret("k1")
    with WebhookReceiver(tls=(cert, key)) as receiver:
        with pytest.raises(WebhookDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            deliver(receiver.url, {"n": 1}, secret=secret, event="document.published", delivery_id="d1")
        settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "WEBHOOK_CA_FILE": cert}
        status = deliver(receiver.url, {"n": 2}, secret=secret, event="document.published", delivery_id="d2")
    assert status == 200
    assert len(receiver.received) == 1  # the unverified attempt sent nothing
    hook = receiver.received[0]
    assert json.loads(hook.body) == {"n": 2}
    headers = {k.lower(): v for k, v in hook.headers.items()}
    assert verify_signature(secret, hook.body, headers["x-durable-timestamp"], headers["x-durable-signature"])


def test_https_delivery_refuses_a_certificate_for_another_name(local_webhooks, settings, certificates):
    cert, key = certificates["other"]
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_CA_FILE": cert,
    }  # trusted, but not for localhost
    with WebhookReceiver(tls=(cert, key)) as receiver, pytest.raises(WebhookDeliveryError, match=r"mismatch|match"):
        deliver(receiver.url, {}, secret="s", event="e", delivery_id="d")
    assert receiver.received == []


def test_signing_secrets_differ_per_token_and_follow_the_key(settings):
    assert signing_secret("a") != signing_secret("b")
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "WEBHOOK_SIGNING_KEY": "another-key"}
    rotated = signing_secret("a")
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "WEBHOOK_SIGNING_KEY": ""}
    assert rotated != signing_secret("a")


def test_delivery_errors_are_classified(local_webhooks):
    with WebhookReceiver([503, 429, 400, 302]) as receiver:
        with pytest.raises(WebhookDeliveryError):
            deliver(receiver.url, {}, secret="s", event="e", delivery_id="d")
        with pytest.raises(WebhookDeliveryError):
            deliver(receiver.url, {}, secret="s", event="e", delivery_id="d")
        with pytest.raises(WebhookRefusedError):
            deliver(receiver.url, {}, secret="s", event="e", delivery_id="d")
        with pytest.raises(WebhookRefusedError):  # redirects are not followed
            deliver(receiver.url, {}, secret="s", event="e", delivery_id="d")
    closed = receiver.url  # nothing listens there any more
    with pytest.raises(WebhookDeliveryError):
        deliver(closed, {}, secret="s", event="e", delivery_id="d")


def test_delivery_rechecks_the_address(local_webhooks, settings):
    with WebhookReceiver() as receiver:
        port = receiver.server.server_address[1]
        # A name that passed the submit-time check but resolves inside is refused when resolved.
        assert resolve(Target("http", "localhost", port, "/")) == "127.0.0.1"
        settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": False}
        with pytest.raises(CallbackURLError, match="not public"):
            resolve(Target("http", "localhost", port, "/"))
        with pytest.raises(CallbackURLError):
            deliver(receiver.url, {}, secret="s", event="e", delivery_id="d")
    assert receiver.received == []


# The workflow posts the outcome as a durable step.


def run_to_review(runner, people, url, key_id="key-1"):
    document = document_submit(
        title="Budget", text=TEXT, submitter=people["submitter"], callback_url=url, webhook_key_id=key_id
    )
    runner.wait_for_callback(str(document.execution_id))
    return document, Review.objects.get(document=document)


def received_payload(receiver, key_id="key-1"):
    (request,) = receiver.received
    headers = request.headers
    assert verify_signature(
        signing_secret(key_id), request.body, headers["X-Durable-Timestamp"], headers["X-Durable-Signature"]
    )
    return json.loads(request.body)


def test_published_documents_are_posted_signed(local_webhooks, people):
    with WebhookReceiver() as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = run_to_review(runner, people, receiver.url)
        review_decide(review, reviewer=people["reviewer"], decision="approved", comment="Good.")
        result = runner.wait_for_result(str(document.execution_id))
    assert json.loads(result.result)["webhook"] == {"delivered": True, "status": 200}
    payload = received_payload(receiver)
    assert payload["event"] == "document.published"
    body = payload["document"]
    assert (body["id"], body["status"], body["decision"]) == (str(document.public_id), "published", "approved")
    assert body["published_text"] == review.summary
    assert body["reviewer_comment"] == "Good."
    assert receiver.received[0].headers["X-Durable-Delivery"] == f"{document.public_id}-published"
    assert [op.name for op in result.operations][-1] == "notify client"


def test_rejected_documents_are_posted(local_webhooks, people):
    with WebhookReceiver() as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = run_to_review(runner, people, receiver.url)
        review_decide(review, reviewer=people["reviewer"], decision="rejected", comment="Off topic.")
        runner.wait_for_result(str(document.execution_id))
    payload = received_payload(receiver)
    assert payload["event"] == "document.rejected"
    assert (payload["document"]["status_detail"], payload["document"]["published_text"]) == ("Off topic.", None)


def test_expired_documents_are_posted(local_webhooks, people, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "REVIEW_TIMEOUT_SECONDS": 3600}
    with WebhookReceiver() as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, _ = run_to_review(runner, people, receiver.url)
        runner.wait_for_result(str(document.execution_id))
    assert received_payload(receiver)["event"] == "document.expired"


def delivery_counts(sink: str) -> tuple[float, float]:
    """The engine's metrics of deliveries to `sink`: tried, failed (the product counts its webhooks there)."""
    from prometheus_client import REGISTRY

    def value(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"sink": sink}) or 0.0

    return value("durable_sink_deliveries_total"), value("durable_sink_delivery_failures_total")


def test_a_failing_receiver_is_retried_with_backoff(local_webhooks, people):
    tried, failed = delivery_counts("client-webhook")
    with WebhookReceiver([503, 500]) as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = run_to_review(runner, people, receiver.url)
        review_decide(review, reviewer=people["reviewer"], decision="approved")
        result = runner.wait_for_result(str(document.execution_id))
    assert len(receiver.received) == 3
    assert json.loads(result.result)["webhook"] == {"delivered": True, "status": 200}
    assert delivery_counts("client-webhook") == (tried + 3, failed + 2)  # /metrics counts each attempt
    step = Operation.objects.get(execution_id=document.execution_id, name="notify client")
    assert (step.status, step.attempt) == ("SUCCEEDED", 3)
    retries = HistoryEvent.objects.filter(
        execution_id=document.execution_id, name="notify client", event_type="StepFailed"
    )
    delays = [e.details["RetryDetails"]["NextAttemptDelaySeconds"] for e in retries.order_by("id")]
    assert len(delays) == 2
    assert all(d >= 1 for d in delays)
    # Each attempt is signed afresh; all carry the same delivery id for the receiver to dedupe.
    assert len({r.headers["X-Durable-Delivery"] for r in receiver.received}) == 1


def test_a_refusing_receiver_is_not_retried_and_the_outcome_stands(local_webhooks, people):
    with WebhookReceiver([410]) as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = run_to_review(runner, people, receiver.url)
        review_decide(review, reviewer=people["reviewer"], decision="approved")
        result = runner.wait_for_result(str(document.execution_id))
    assert len(receiver.received) == 1
    assert result.status == "SUCCEEDED"
    webhook = json.loads(result.result)["webhook"]
    assert webhook["delivered"] is False
    assert "410" in webhook["error"]
    document.refresh_from_db()
    assert document.status == "published"


def test_retries_stop_after_the_configured_attempts(local_webhooks, people, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "WEBHOOK_MAX_ATTEMPTS": 3}
    with WebhookReceiver([503] * 10) as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = run_to_review(runner, people, receiver.url)
        review_decide(review, reviewer=people["reviewer"], decision="rejected", comment="No.")
        result = runner.wait_for_result(str(document.execution_id))
    assert len(receiver.received) == 3
    assert json.loads(result.result)["webhook"]["delivered"] is False


def test_documents_without_a_callback_url_post_nothing(people):
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(title="t", text=TEXT, submitter=people["submitter"])
        runner.wait_for_callback(str(document.execution_id))
        review_decide(Review.objects.get(document=document), reviewer=people["reviewer"], decision="approved")
        result = runner.wait_for_result(str(document.execution_id))
    assert "webhook" not in json.loads(result.result)
    assert not Operation.objects.filter(execution_id=document.execution_id, name="notify client").exists()
