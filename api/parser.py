"""The API's JSON parser: the one place request bodies enter, so the one place they are checked.

Python's json module accepts what no database stores (NaN, Infinity, numbers that overflow to
infinity, lone surrogates, NUL, any depth up to a RecursionError); this parser refuses all of it
with a 422 in the API's error shape, before any endpoint (or the engine) sees the value.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn, cast

from django.http import HttpRequest
from ninja.parser import Parser
from ninja.types import DictStrAny

from api.errors import ApiError
from approvals.errors import InvalidValueError
from approvals.validators import check_json


def invalid(message: str, loc: list[Any], kind: str) -> ApiError:
    return ApiError(422, "validation_error", message, [{"loc": loc, "message": message, "type": kind}])


def _constant(name: str) -> NoReturn:
    raise invalid(f"{name} is not a JSON number: numbers must be finite", ["body"], "non_finite_number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise invalid(f"{text[:40]} is too large to store: numbers must be finite", ["body"], "non_finite_number")
    return value


class StrictJsonParser(Parser):
    def parse_body(self, request: HttpRequest) -> DictStrAny:
        try:
            data = json.loads(request.body, parse_constant=_constant, parse_float=_float)
        except RecursionError:
            raise invalid("the body is nested too deeply", ["body"], "too_deep") from None
        except ValueError:
            raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
        try:
            check_json(data, ["body"])
        except InvalidValueError as exc:
            raise invalid(str(exc), exc.loc, exc.kind) from None
        return cast(DictStrAny, data)
