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
redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.utils.crypto import salted_hmac

from approvals import conf
from approvals.errors import CallbackURLError, WebhookDeliveryError, WebhookRefusedError

SIGNATURE_HEADER = "X-Durable-Signature"
TIMESTAMP_HEADER = "X-Durable-Timestamp"
DELIVERY_HEADER = "X-Durable-Delivery"
EVENT_HEADER = "X-Durable-Event"
# How old a signed timestamp a receiver should still accept, by default.
DEFAULT_TOLERANCE_SECONDS = 300


def signing_secret(key_id: str) -> str:
    """The webhook signing secret of the API token whose public id is `key_id`."""
    key = conf.get("WEBHOOK_SIGNING_KEY") or salted_hmac("approvals.webhooks.key", "", algorithm="sha256").hexdigest()
    return hmac.new(key.encode(), f"approvals.webhooks.secret:{key_id}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is within `tolerance`."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def check_callback_url(url: str) -> Target:
    """Check a callback URL without resolving it. Raises CallbackURLError.

    The host is read as browsers and curl read it: numeric forms (`2130706433`, `0x7f000001`,
    `127.1`, `0177.0.0.1`, `0`) are IPv4 addresses and `localhost.` is `localhost`, so none of
    them slips past the address check to be refused only at delivery.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackURLError(f"callback_url is not a valid URL: {exc}") from None
    allowed = ("https", "http") if conf.get("WEBHOOK_ALLOW_HTTP") else ("https",)
    if parts.scheme not in allowed:
        raise CallbackURLError(f"callback_url must use {' or '.join(allowed)}")
    if parts.username or parts.password:
        raise CallbackURLError("callback_url must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise CallbackURLError("callback_url has no host")
    if len(url) > 500:
        raise CallbackURLError("callback_url is longer than 500 characters")
    literal = host_address(host)
    if literal is not None:
        check_address(literal)
    elif host == "localhost" or host.endswith(".localhost"):
        check_address(ipaddress.ip_address("127.0.0.1"))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def _ipv4_part(part: str) -> int | None:
    """One dot-separated part of a numeric IPv4 host, in decimal, octal (0...) or hex (0x...)."""
    text = part.lower()
    base = 10
    if text.startswith("0x"):
        text, base = text[2:], 16
    elif len(text) > 1 and text.startswith("0"):
        text, base = text[1:], 8
    if text == "":
        return 0 if base == 16 else None
    if not text.isascii() or not text.isalnum():
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a URL's host denotes, if it is numeric (the WHATWG URL rules for IPv4)."""
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_part(part) for part in parts]
    if any(n is None for n in numbers):
        return None  # a name, not a number
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        raise CallbackURLError(f"callback_url's host {host} is not a valid address")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), if any."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    packed = int(address)
    if address in ipaddress.ip_network("64:ff9b::/96") or packed >> 32 == 0:
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Refuse an address that is not globally routable (loopback, private, shared, link-local,
    reserved, site-local, documentation...), unless private addresses are allowed; refuse
    unspecified and multicast addresses always. Raises CallbackURLError."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            check_address(embedded)
    if address.is_unspecified or address.is_multicast:
        raise CallbackURLError(f"callback_url points at {address}, which cannot receive webhooks")
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    if (not address.is_global or site_local) and not conf.get("WEBHOOK_ALLOW_PRIVATE_ADDRESSES"):
        raise CallbackURLError(f"callback_url points at an address that is not public ({address})")


def resolve(target: Target) -> str:
    """The address to connect to, every address of the host checked. Raises CallbackURLError,
    WebhookDeliveryError (the name does not resolve now)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookDeliveryError(f"cannot resolve {target.host}: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        check_address(ipaddress.ip_address(address.split("%")[0]))
    if not addresses:
        raise WebhookDeliveryError(f"{target.host} has no address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        # The system's trust store, or the CA bundle a setting names (a private CA, say).
        context = ssl.create_default_context(cafile=conf.get("WEBHOOK_CA_FILE") or None)
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def deliver(url: str, payload: dict[str, Any], *, secret: str, event: str, delivery_id: str) -> int:
    """POST one signed attempt; returns the receiver's status (2xx).

    Raises CallbackURLError or WebhookRefusedError (permanent), WebhookDeliveryError (retry).
    """
    target = check_callback_url(url)
    address = resolve(target)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "durable-django-webhooks/1",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }
    timeout = float(conf.get("WEBHOOK_TIMEOUT_SECONDS"))
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = cls(address, target.host, target.port, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        raise WebhookDeliveryError(f"POST {target.host} failed: {exc}") from None
    finally:
        connection.close()
    if 200 <= status < 300:
        return status
    if status >= 500 or status in (408, 429):
        raise WebhookDeliveryError(f"the receiver answered {status}")
    raise WebhookRefusedError(f"the receiver answered {status} (not retried)")
