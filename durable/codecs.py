"""The official SDK's type codecs: a value as a tagged envelope `{"t": tag, "v": value}`.

The official `serdes` module builds its extended-type encoding from these (`TypeCodec` dispatching
to one codec per family of types); code written against it may use them directly, so they exist
here with the same tags and the same envelope. Our own `ExtendedTypeSerDes` keeps the encoding the
journal already holds (see `durable.serdes`); these are for ported code and do not change it.
"""

from __future__ import annotations

import base64
import enum
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from durable.exceptions import DurableExecutionsError, SerDesError

TYPE_TOKEN = "t"  # noqa: S105 - the envelope's key, not a secret
VALUE_TOKEN = "v"  # noqa: S105


class TypeTag(enum.StrEnum):
    NONE = "n"
    STR = "s"
    INT = "i"
    FLOAT = "f"
    BOOL = "b"
    BYTES = "B"
    UUID = "u"
    DECIMAL = "d"
    DATETIME = "dt"
    DATE = "D"
    TUPLE = "t"
    LIST = "l"
    DICT = "m"
    BATCH_RESULT = "br"


@dataclass(frozen=True)
class EncodedValue:
    """A value as its tag and a JSON-ready payload."""

    tag: TypeTag
    value: Any


class Codec(Protocol):
    def encode(self, obj: Any) -> EncodedValue: ...
    def decode(self, tag: TypeTag, value: Any) -> Any: ...


def _expect(tag: TypeTag, *allowed: TypeTag) -> None:
    if tag not in allowed:
        raise SerDesError(f"expected a {' or '.join(a.name for a in allowed)} tag, got {tag!r}")


_PRIMITIVES: dict[TypeTag, Any] = {
    TypeTag.NONE: lambda _: None,
    TypeTag.STR: str,
    TypeTag.BOOL: bool,
    TypeTag.INT: int,
    TypeTag.FLOAT: float,
}


class PrimitiveCodec:
    """None, str, bool, int, float: the value itself."""

    def encode(self, obj: Any) -> EncodedValue:
        # bool before int: True is an int too.
        for kind, tag in ((bool, TypeTag.BOOL), (str, TypeTag.STR), (int, TypeTag.INT), (float, TypeTag.FLOAT)):
            if isinstance(obj, kind):
                return EncodedValue(tag, obj)
        if obj is None:
            return EncodedValue(TypeTag.NONE, None)
        raise SerDesError(f"not a primitive: {type(obj)!r}")

    def decode(self, tag: TypeTag, value: Any) -> Any:
        if tag not in _PRIMITIVES:
            raise SerDesError(f"not a primitive's tag: {tag!r}")
        return _PRIMITIVES[tag](value)


class BytesCodec:
    """bytes, bytearray, memoryview: base64 text; decodes to bytes."""

    def encode(self, obj: Any) -> EncodedValue:
        return EncodedValue(TypeTag.BYTES, base64.b64encode(bytes(obj)).decode("ascii"))

    def decode(self, tag: TypeTag, value: Any) -> Any:
        _expect(tag, TypeTag.BYTES)
        return base64.b64decode(value)


class UuidCodec:
    def encode(self, obj: Any) -> EncodedValue:
        return EncodedValue(TypeTag.UUID, str(obj))

    def decode(self, tag: TypeTag, value: Any) -> Any:
        _expect(tag, TypeTag.UUID)
        return uuid.UUID(value)


class DecimalCodec:
    def encode(self, obj: Any) -> EncodedValue:
        return EncodedValue(TypeTag.DECIMAL, str(obj))

    def decode(self, tag: TypeTag, value: Any) -> Any:
        _expect(tag, TypeTag.DECIMAL)
        return Decimal(value)


class DateTimeCodec:
    """datetime and date, as ISO 8601 (a trailing Z reads as UTC)."""

    def encode(self, obj: Any) -> EncodedValue:
        if isinstance(obj, datetime):
            return EncodedValue(TypeTag.DATETIME, obj.isoformat())
        if isinstance(obj, date):
            return EncodedValue(TypeTag.DATE, obj.isoformat())
        raise SerDesError(f"not a date or datetime: {type(obj)!r}")

    def decode(self, tag: TypeTag, value: Any) -> Any:
        _expect(tag, TypeTag.DATETIME, TypeTag.DATE)
        if tag is TypeTag.DATE:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


class ContainerCodec:
    """list, tuple, dict (and a batch result, by its to_dict/from_dict): each element encoded by
    the dispatcher it is linked to, as `{"t": ..., "v": ...}`."""

    def __init__(self) -> None:
        self._dispatcher: Codec | None = None
        # The class whose to_dict / from_dict carry a map's or parallel's result (set where it lives).
        self.batch_result_type: Any = None

    def set_dispatcher(self, dispatcher: Codec) -> None:
        self._dispatcher = dispatcher

    @property
    def dispatcher(self) -> Codec:
        if self._dispatcher is None:
            raise DurableExecutionsError("ContainerCodec is not linked to a TypeCodec dispatcher")
        return self._dispatcher

    def _wrap(self, obj: Any) -> dict[str, Any]:
        encoded = self.dispatcher.encode(obj)
        return {TYPE_TOKEN: encoded.tag.value, VALUE_TOKEN: encoded.value}

    def _unwrap(self, node: Any) -> Any:
        if isinstance(node, EncodedValue):
            return self.dispatcher.decode(node.tag, node.value)
        if isinstance(node, dict) and TYPE_TOKEN in node and VALUE_TOKEN in node:
            return self.dispatcher.decode(TypeTag(node[TYPE_TOKEN]), node[VALUE_TOKEN])
        return node

    def encode(self, obj: Any) -> EncodedValue:
        if self.batch_result_type is not None and isinstance(obj, self.batch_result_type):
            return EncodedValue(TypeTag.BATCH_RESULT, self.encode(obj.to_dict()).value)
        if isinstance(obj, list | tuple):
            return EncodedValue(TypeTag.LIST if isinstance(obj, list) else TypeTag.TUPLE, [self._wrap(v) for v in obj])
        if isinstance(obj, dict):
            if any(isinstance(key, tuple) for key in obj):
                raise SerDesError("tuple keys are not supported")
            return EncodedValue(TypeTag.DICT, {key: self._wrap(v) for key, v in obj.items()})
        raise SerDesError(f"not a container: {type(obj)!r}")

    def decode(self, tag: TypeTag, value: Any) -> Any:
        if tag is TypeTag.BATCH_RESULT:
            if self.batch_result_type is None:
                raise SerDesError("a batch result cannot be decoded: no batch result type is set")
            return self.batch_result_type.from_dict(self.decode(TypeTag.DICT, value))
        if tag in (TypeTag.LIST, TypeTag.TUPLE):
            if not isinstance(value, list):
                raise SerDesError(f"expected a list, got {type(value)!r}")
            items = [self._unwrap(v) for v in value]
            return items if tag is TypeTag.LIST else tuple(items)
        if tag is TypeTag.DICT:
            if not isinstance(value, dict):
                raise SerDesError(f"expected a dict, got {type(value)!r}")
            return {key: self._unwrap(v) for key, v in value.items()}
        raise SerDesError(f"not a container's tag: {tag!r}")


class TypeCodec:
    """Encodes any supported value by its type, and decodes by tag, through the codecs above."""

    def __init__(self) -> None:
        self.primitive_codec = PrimitiveCodec()
        self.bytes_codec = BytesCodec()
        self.uuid_codec = UuidCodec()
        self.decimal_codec = DecimalCodec()
        self.datetime_codec = DateTimeCodec()
        self.container_codec = ContainerCodec()
        self.container_codec.set_dispatcher(self)

    def _for_value(self, obj: Any) -> Codec:
        batch = self.container_codec.batch_result_type
        families: list[tuple[Any, Codec]] = [
            (type(None) | str | bool | int | float, self.primitive_codec),
            (bytes | bytearray | memoryview, self.bytes_codec),
            (uuid.UUID, self.uuid_codec),
            (Decimal, self.decimal_codec),
            (datetime | date, self.datetime_codec),
            (list | tuple | dict, self.container_codec),
        ]
        for kinds, codec in families:
            if isinstance(obj, kinds) or (batch is not None and isinstance(obj, batch) and codec is families[-1][1]):
                return codec
        raise SerDesError(f"unsupported type: {type(obj)!r}")

    def encode(self, obj: Any) -> EncodedValue:
        return self._for_value(obj).encode(obj)

    def decode(self, tag: TypeTag, value: Any) -> Any:
        by_tag: dict[TypeTag, Codec] = {
            TypeTag.BYTES: self.bytes_codec,
            TypeTag.UUID: self.uuid_codec,
            TypeTag.DECIMAL: self.decimal_codec,
            TypeTag.DATETIME: self.datetime_codec,
            TypeTag.DATE: self.datetime_codec,
            TypeTag.LIST: self.container_codec,
            TypeTag.TUPLE: self.container_codec,
            TypeTag.DICT: self.container_codec,
            TypeTag.BATCH_RESULT: self.container_codec,
        }
        codec = by_tag.get(tag, self.primitive_codec if tag in _PRIMITIVES else None)
        if codec is None:
            raise SerDesError(f"unknown type tag: {tag!r}")
        return codec.decode(tag, value)


TYPE_CODEC = TypeCodec()
