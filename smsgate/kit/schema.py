"""The base of every request body: camelCase keys, unknown keys refused, no type coercion."""

from __future__ import annotations

from typing import TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

M = TypeVar("M", bound=BaseModel)


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, strict=True)


def parse(model: type[M], raw: object) -> M:
    """Validate a body read by hand (when its model depends on the object it changes), with
    the same 400 answers as a declared body."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
