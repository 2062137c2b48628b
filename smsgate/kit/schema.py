"""The base of every request body: camelCase keys, unknown keys refused, no type coercion."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from smsgate.errors import UNSTORABLE, ApiError
from smsgate.kit.i18n import Text, t

M = TypeVar("M", bound=BaseModel)


# text no database can store: NUL (PostgreSQL's text), and a lone UTF-16 surrogate (JSON allows
# "\ud800"; it is not a character and has no UTF-8 form)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_at(value: Any, path: str) -> tuple[str, Text] | None:
    """The path (as error messages name fields: `phoneNumbers[1]`) of the first string holding
    unstorable text, and what it holds; None when there is none."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return (path, _what(found.group())) if found else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            if (bad := _UNSTORABLE.search(name)) is not None:
                return path or name, _what(bad.group())
            inner = _unstorable_at(item, f"{path}.{name}" if path else name)
            if inner is not None:
                return inner
    elif isinstance(value, list):
        for index, item in enumerate(value):
            inner = _unstorable_at(item, f"{path}[{index}]")
            if inner is not None:
                return inner
    return None


def _what(char: str) -> Text:
    if char == "\x00":
        return t("contains the NUL character (\\u0000), which cannot be stored")
    return t(
        "contains a lone UTF-16 surrogate (\\u{code}), which is not a character",
        code=f"{ord(char):04x}",
    )


def parse_json(raw: bytes) -> Any:
    """A body read by hand as JSON: 400 for text that is not JSON or nests deeper than any
    request of this API (which Python's parser would meet as a RecursionError)."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise ApiError(400, t("request body nests too deeply"), "validation_error") from exc
    except ValueError as exc:
        raise ApiError(400, t("request body is not valid JSON"), "validation_error") from exc


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """No string anywhere in a body may hold NUL (PostgreSQL cannot store it in text) or a
        lone surrogate (it has no UTF-8 form); no phone number, message or name needs them."""
        found = _unstorable_at(data, "")
        if found is not None:
            path, what = found  # the error's field is the path (errors.describe_validation_error)
            raise PydanticCustomError(UNSTORABLE, "{what}", {"path": path, "what": what})
        return data


def parse(model: type[M], raw: object) -> M:
    """Validate a body read by hand (when its model depends on the object it changes), with
    the same 400 answers as a declared body."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


async def json_body(request: Request) -> Any:
    """The body as JSON, or None when there is none (routes that check its shape by hand)."""
    raw = await request.body()
    if not raw:
        return None
    return parse_json(raw)


async def read_body(request: Request, model: type[M]) -> M:
    """Validate a JSON body straight from its bytes (a hot route's declared body, without
    FastAPI's dependency solving), with the same 400 answers as a declared body."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "required"}])
    content_type = request.headers.get("content-type", "")
    if content_type and not _is_json(content_type):
        raise RequestValidationError(
            [
                {
                    "type": "json_type",
                    "loc": (),
                    "msg": "request body must be JSON: send it with Content-Type: application/json",
                }
            ]
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc


def _is_json(content_type: str) -> bool:
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def storable(text: object) -> str:
    """Free text a device wrote (an error, a provider's id), as it can be stored: PostgreSQL
    text cannot hold NUL, and a device's report is never refused for what it wrote in it."""
    return str(text).replace("\x00", "")


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route that reads `model` by hand (its nested models
    inlined, as the route has no components of its own)."""
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }


def example_body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    """The OpenAPI `requestBody` (for a route's `openapi_extra`) of a body a route reads by hand
    and leniently, described as a JSON schema with one example."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {**schema, "examples": [example]}}},
        }
    }
