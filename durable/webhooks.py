"""Signed webhooks, and the rules that keep them from reaching inside: shared by the engine's
event sink (`durable.sinks`) and any product that posts webhooks of its own.

The body is JSON; `X-Durable-Timestamp` is the Unix time of the attempt and `X-Durable-Signature`
is `sha256=` + hex HMAC-SHA256 of `"<timestamp>." + body` under the signing secret, so a receiver
can check both who sent it and that it is fresh (`verify_signature`).

A URL is checked without resolving it (scheme, credentials, literal addresses read as browsers
read them) and again at each delivery, against every address the host resolves to then; the
connection goes to the address that was checked (no second lookup a rebinding DNS could answer
differently), and redirects are not followed. What is allowed (plain http, private addresses, a
CA bundle, the timeout) is a `Policy` the caller builds from its own settings.
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

SIGNATURE_HEADER = "X-Durable-Signature"
TIMESTAMP_HEADER = "X-Durable-Timestamp"
DELIVERY_HEADER = "X-Durable-Delivery"
EVENT_HEADER = "X-Durable-Event"
# How old a signed timestamp a receiver should still accept, by default.
DEFAULT_TOLERANCE_SECONDS = 300

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURLError(ValueError):
    """The URL is not allowed (scheme, credentials, or an address that is not public)."""


class DeliveryError(Exception):
    """This attempt failed (network error, 5xx, 408, 429): worth retrying."""


class RefusedError(Exception):
    """The receiver refused the webhook for good (another 4xx, a redirect): not retried."""


@dataclass(frozen=True)
class Policy:
    """What a sender allows. `label` names the URL in error messages ("callback_url")."""

    allow_http: bool = False
    allow_private_addresses: bool = False
    timeout: float = 10.0
    ca_file: str = ""
    label: str = "url"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


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


def check_url(url: str, policy: Policy) -> Target:
    """Check a URL without resolving it. Raises UnsafeURLError.

    The host is read as browsers and curl read it: numeric forms (`2130706433`, `0x7f000001`,
    `127.1`, `0177.0.0.1`, `0`) are IPv4 addresses and `localhost.` is `localhost`, so none of
    them slips past the address check to be refused only at delivery.
    """
    label = policy.label
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"{label} is not a valid URL: {exc}") from None
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeURLError(f"{label} must use {' or '.join(allowed)}")
    if parts.username or parts.password:
        raise UnsafeURLError(f"{label} must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURLError(f"{label} has no host")
    if len(url) > 500:
        raise UnsafeURLError(f"{label} is longer than 500 characters")
    literal = host_address(host, policy)
    if literal is not None:
        check_address(literal, policy)
    elif host == "localhost" or host.endswith(".localhost"):
        check_address(ipaddress.ip_address("127.0.0.1"), policy)
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


def host_address(host: str, policy: Policy = Policy()) -> Address | None:
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
        raise UnsafeURLError(f"{policy.label}'s host {host} is not a valid address")
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


def check_address(address: Address, policy: Policy) -> None:
    """Refuse an address that is not globally routable (loopback, private, shared, link-local,
    reserved, site-local, documentation...), unless the policy allows private addresses; refuse
    unspecified and multicast addresses always. Raises UnsafeURLError."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            check_address(embedded, policy)
    if address.is_unspecified or address.is_multicast:
        raise UnsafeURLError(f"{policy.label} points at {address}, which cannot receive webhooks")
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    if (not address.is_global or site_local) and not policy.allow_private_addresses:
        raise UnsafeURLError(f"{policy.label} points at an address that is not public ({address})")


def resolve(target: Target, policy: Policy) -> str:
    """The address to connect to, every address of the host checked. Raises UnsafeURLError,
    DeliveryError (the name does not resolve now)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DeliveryError(f"cannot resolve {target.host}: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        check_address(ipaddress.ip_address(address.split("%")[0]), policy)
    if not addresses:
        raise DeliveryError(f"{target.host} has no address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float, ca_file: str) -> None:
        # The system's trust store, or the CA bundle the policy names (a private CA, say).
        context = ssl.create_default_context(cafile=ca_file or None)
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def body_of(payload: Any) -> bytes:
    """The JSON body that is signed and sent (keys sorted, no spaces)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def deliver(url: str, payload: Any, *, secret: str, event: str, delivery_id: str, policy: Policy) -> int:
    """POST one signed attempt to the checked address; returns the receiver's status (2xx).

    Raises UnsafeURLError or RefusedError (permanent), DeliveryError (retry).
    """
    target = check_url(url, policy)
    address = resolve(target, policy)
    body = body_of(payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "durable-django-webhooks/1",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(address, target.host, target.port, policy.timeout, policy.ca_file)
    else:
        connection = _PinnedHTTPConnection(address, target.host, target.port, policy.timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"POST {target.host} failed: {exc}") from None
    finally:
        connection.close()
    if 200 <= status < 300:
        return status
    if status >= 500 or status in (408, 429):
        raise DeliveryError(f"the receiver answered {status}")
    raise RefusedError(f"the receiver answered {status} (not retried)")
