"""Serialization of operation results into the journal.

The default, `ExtendedTypeSerDes`, writes plain JSON when JSON represents the value exactly
(so journals stay readable in the admin), and a tagged envelope otherwise: tuples, non-string
dict keys, datetimes, dates, Decimals, UUIDs, bytes and non-finite floats survive replay with
their types. Anything else is refused with a `SerDesError` that names the type.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from durable.codecs import (
    TYPE_CODEC,
    TYPE_TOKEN,
    VALUE_TOKEN,
    BytesCodec,
    Codec,
    ContainerCodec,
    DateTimeCodec,
    DecimalCodec,
    EncodedValue,
    PrimitiveCodec,
    TypeCodec,
    TypeTag,
    UuidCodec,
)
from durable.exceptions import SerDesError

# The official module's codecs, offered here as there (see durable.codecs).
__all__ = [
    "DEFAULT_JSON_SERDES",
    "DEFAULT_SERDES",
    "EXTENDED_TYPES_SERDES",
    "TYPE_CODEC",
    "TYPE_TOKEN",
    "VALUE_TOKEN",
    "BytesCodec",
    "Codec",
    "ContainerCodec",
    "DateTimeCodec",
    "DecimalCodec",
    "EncodedValue",
    "ExtendedTypeSerDes",
    "JsonSerDes",
    "PassThroughSerDes",
    "PrimitiveCodec",
    "SerDes",
    "SerDesContext",
    "TypeCodec",
    "TypeTag",
    "UuidCodec",
    "deserialize",
    "serialize",
]

T = TypeVar("T")

ENVELOPE_KEY = "__durable_serdes__"


@dataclass(frozen=True)
class SerDesContext:
    operation_id: str = ""
    durable_execution_arn: str = ""


class SerDes(ABC, Generic[T]):
    """Turns a value into a string for the journal and back."""

    @abstractmethod
    def serialize(self, value: T, serdes_context: SerDesContext) -> str: ...

    @abstractmethod
    def deserialize(self, data: str, serdes_context: SerDesContext) -> T: ...


class PassThroughSerDes(SerDes[Any]):
    """Stores strings as they are (callback results arrive as raw strings)."""

    def serialize(self, value: Any, _: SerDesContext) -> str:
        return value  # type: ignore[no-any-return]

    def deserialize(self, data: str, _: SerDesContext) -> Any:
        return data


class JsonSerDes(SerDes[Any]):
    def serialize(self, value: Any, _: SerDesContext) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, _: SerDesContext) -> Any:
        return json.loads(data)


class _UnsupportedTypeError(Exception):
    def __init__(self, value: Any) -> None:
        self.type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        super().__init__(self.type_name)


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if type(value) is list:
        return all(_is_plain(v) for v in value)
    if type(value) is dict:
        return ENVELOPE_KEY not in value and all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _encode(value: Any) -> Any:
    # Each node becomes [tag, payload]; bool is tested before int because bool is an int.
    if value is None or isinstance(value, (bool, str)):
        return ["=", value]
    if isinstance(value, int):
        return ["=", value]
    if isinstance(value, float):
        return ["f", repr(value)] if not math.isfinite(value) else ["=", value]
    if isinstance(value, list):
        return ["l", [_encode(v) for v in value]]
    if isinstance(value, tuple):
        return ["t", [_encode(v) for v in value]]
    if isinstance(value, dict):
        return ["m", [[_encode(k), _encode(v)] for k, v in value.items()]]
    if isinstance(value, dt.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, dt.date):
        return ["d", value.isoformat()]
    if isinstance(value, Decimal):
        return ["dec", str(value)]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["b", base64.b64encode(bytes(value)).decode()]
    raise _UnsupportedTypeError(value)


def _decode(node: Any) -> Any:
    tag, payload = node
    match tag:
        case "=":
            return payload
        case "f":
            return float(payload)
        case "l":
            return [_decode(v) for v in payload]
        case "t":
            return tuple(_decode(v) for v in payload)
        case "m":
            return {_decode(k): _decode(v) for k, v in payload}
        case "dt":
            return dt.datetime.fromisoformat(payload)
        case "d":
            return dt.date.fromisoformat(payload)
        case "dec":
            return Decimal(payload)
        case "u":
            return uuid.UUID(payload)
        case "b":
            return base64.b64decode(payload)
    raise SerDesError(f"unknown serdes tag {tag!r} in the journal", "SerDesError")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ExtendedTypeSerDes(SerDes[Any]):
    """The default serdes: JSON, with tags only where JSON would lose a type."""

    def serialize(self, value: Any, context: SerDesContext | None = None) -> str:
        try:
            if _is_plain(value):
                text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
                # A lone surrogate (a file name that was not UTF-8, via os.fsdecode) has no UTF-8
                # form for the database: written as a JSON escape, it comes back exactly.
                if not text.isascii() and not _utf8(text):
                    text = json.dumps(value, separators=(",", ":"))
                return text
            return json.dumps({ENVELOPE_KEY: 1, "v": _encode(value)}, separators=(",", ":"))
        except _UnsupportedTypeError as exc:
            raise SerDesError(
                f"a value of type {exc.type_name} cannot be serialized; return JSON-compatible "
                "data (dict, list, str, int, float, bool, None, datetime, Decimal, UUID, bytes, "
                "tuple) or give the operation a custom serdes",
                "SerDesError",
            ) from None

    def deserialize(self, data: str, context: SerDesContext | None = None) -> Any:
        parsed = _loads(data)
        if type(parsed) is dict and ENVELOPE_KEY in parsed:
            return _decode(parsed["v"])
        return parsed


_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set by its __init__


def _loads(data: str) -> Any:
    """`json.loads`, without its two whitespace matches around the value when there is none
    (what this module writes): a replay decodes every step's result. Anything else, and every
    error, goes through `json.loads` itself."""
    if type(data) is str:
        try:
            value, end = _scan(data, 0)
        except (StopIteration, ValueError):
            return json.loads(data)
        if end == len(data):
            return value
    return json.loads(data)


DEFAULT_SERDES = ExtendedTypeSerDes()
# The official SDK's names for the two ready-made instances.
DEFAULT_JSON_SERDES: SerDes[Any] = JsonSerDes()
EXTENDED_TYPES_SERDES: SerDes[Any] = DEFAULT_SERDES


def serialize(serdes: SerDes[Any] | None, value: Any, operation_id: str, execution_id: str) -> str:
    """Serialize with `serdes` or the default; raises SerDesError."""
    codec = serdes or DEFAULT_SERDES
    try:
        return codec.serialize(value, SerDesContext(operation_id, execution_id))
    except SerDesError:
        raise
    except Exception as exc:
        raise SerDesError(
            f"{type(codec).__name__} could not serialize a value of type {type(value).__qualname__}: {exc}",
            "SerDesError",
        ) from exc


def deserialize(serdes: SerDes[Any] | None, data: str, operation_id: str, execution_id: str) -> Any:
    """Deserialize with `serdes` or the default; raises SerDesError."""
    codec = serdes or DEFAULT_SERDES
    try:
        if codec is DEFAULT_SERDES:  # it reads no context: none made per step replayed
            return DEFAULT_SERDES.deserialize(data)
        return codec.deserialize(data, SerDesContext(operation_id, execution_id))
    except SerDesError:
        raise
    except Exception as exc:
        raise SerDesError(
            f"{type(codec).__name__} could not deserialize a journal value: {exc}", "SerDesError"
        ) from exc
