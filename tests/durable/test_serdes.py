import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.exceptions import SerDesError
from durable.serdes import ENVELOPE_KEY, ExtendedTypeSerDes, JsonSerDes, deserialize, serialize

serdes = ExtendedTypeSerDes()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

extended_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=16)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids()
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
)
extended_values = st.recursive(
    extended_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.integers() | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_plain_json_is_stored_as_plain_json(value):
    data = serdes.serialize(value)
    assert json.loads(data) == value
    assert serdes.deserialize(data) == value


@given(extended_values)
def test_extended_values_round_trip_with_their_types(value):
    back = serdes.deserialize(serdes.serialize(value))
    assert back == value
    assert type(back) is type(value)


def test_a_dict_that_looks_like_the_envelope_survives():
    value = {ENVELOPE_KEY: 1, "v": ["=", "not really"]}
    assert serdes.deserialize(serdes.serialize(value)) == value


def test_non_finite_floats_survive():
    value = [float("inf"), float("-inf")]
    assert serdes.deserialize(serdes.serialize(value)) == value


def test_unsupported_types_name_the_type():
    class Widget:
        pass

    with pytest.raises(SerDesError, match=r"test_serdes\..*Widget"):
        serialize(None, {"a": [Widget()]}, "op", "exec")
    with pytest.raises(SerDesError, match="set"):
        serialize(None, {1, 2}, "op", "exec")


def test_a_custom_serdes_error_is_wrapped_with_the_codec_name():
    with pytest.raises(SerDesError, match="JsonSerDes could not serialize a value of type object"):
        serialize(JsonSerDes(), object(), "op", "exec")
    with pytest.raises(SerDesError, match="could not deserialize"):
        deserialize(JsonSerDes(), "{not json", "op", "exec")


def test_known_values_encode_compactly():
    assert serdes.serialize({"a": 1}) == '{"a":1}'
    assert serdes.deserialize(serdes.serialize(Decimal("1.10"))) == Decimal("1.10")
    assert serdes.deserialize(serdes.serialize(uuid.UUID(int=1))) == uuid.UUID(int=1)
