"""Signed webhooks: tell an API client that its document was published, rejected or expired.

The body is JSON; `X-Durable-Timestamp` is the Unix time of the attempt and `X-Durable-Signature`
is `sha256=` + hex HMAC-SHA256 of `"<timestamp>." + body` under the token's signing secret, so a
receiver can check both who sent it and that it is fresh (see `verify_signature`).

The signing secret is derived, not stored: HMAC of the token's public id under a server key
(`WEBHOOK_SIGNING_KEY`, or one derived from SECRET_KEY). A database dump alone cannot forge a
webhook, and the token's own secret (stored only as a hash) is never needed to sign.

`callback_url` is checked when a document is submitted (scheme, credentials, literal addresses)
and again at each delivery, against the addresses the host resolves to then; the connection goes
to the address that was checked (no second lookup a rebinding DNS could answer differently), and
redirects are not followed. The signing and the address rules are the engine's
(`durable.webhooks`, shared with its event sink); this module applies the product's settings to
them and raises the product's errors.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.utils.crypto import salted_hmac

from approvals import conf
from approvals.errors import CallbackURLError, WebhookDeliveryError, WebhookRefusedError
from durable import webhooks as engine
from durable.webhooks import (
    DEFAULT_TOLERANCE_SECONDS,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Address,
    Target,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Target",
    "check_address",
    "check_callback_url",
    "deliver",
    "host_address",
    "resolve",
    "sign",
    "signing_secret",
    "verify_signature",
]


def signing_secret(key_id: str) -> str:
    """The webhook signing secret of the API token whose public id is `key_id`."""
    key = conf.get("WEBHOOK_SIGNING_KEY") or salted_hmac("approvals.webhooks.key", "", algorithm="sha256").hexdigest()
    return hmac.new(key.encode(), f"approvals.webhooks.secret:{key_id}".encode(), hashlib.sha256).hexdigest()


def policy() -> engine.Policy:
    """What the product's settings allow (read at each call, so a changed setting applies)."""
    return engine.Policy(
        allow_http=bool(conf.get("WEBHOOK_ALLOW_HTTP")),
        allow_private_addresses=bool(conf.get("WEBHOOK_ALLOW_PRIVATE_ADDRESSES")),
        timeout=float(conf.get("WEBHOOK_TIMEOUT_SECONDS")),
        ca_file=conf.get("WEBHOOK_CA_FILE") or "",
        label="callback_url",
    )


@contextmanager
def _product_errors() -> Iterator[None]:
    """The engine's errors as the product's (which its callers and retry policies name)."""
    try:
        yield
    except engine.UnsafeURLError as exc:
        raise CallbackURLError(str(exc)) from None
    except engine.DeliveryError as exc:
        raise WebhookDeliveryError(str(exc)) from None
    except engine.RefusedError as exc:
        raise WebhookRefusedError(str(exc)) from None


def _product[**P, T](function: Callable[P, T]) -> Callable[P, T]:
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        with _product_errors():
            return function(*args, **kwargs)

    return call


@_product
def check_callback_url(url: str) -> Target:
    """Check a callback URL without resolving it. Raises CallbackURLError."""
    return engine.check_url(url, policy())


@_product
def host_address(host: str) -> Address | None:
    """The address a URL's host denotes, if it is numeric. Raises CallbackURLError."""
    return engine.host_address(host, policy())


@_product
def check_address(address: Address) -> None:
    """Refuse an address that is not public unless a setting allows it. Raises CallbackURLError."""
    engine.check_address(address, policy())


@_product
def resolve(target: Target) -> str:
    """The address to connect to, every address of the host checked. Raises CallbackURLError,
    WebhookDeliveryError (the name does not resolve now)."""
    return engine.resolve(target, policy())


@_product
def deliver(url: str, payload: dict[str, Any], *, secret: str, event: str, delivery_id: str) -> int:
    """POST one signed attempt; returns the receiver's status (2xx).

    Raises CallbackURLError or WebhookRefusedError (permanent), WebhookDeliveryError (retry).
    """
    return engine.deliver(url, payload, secret=secret, event=event, delivery_id=delivery_id, policy=policy())
