"""The base of every request body: camelCase keys, unknown keys refused, no type coercion."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, strict=True)
