"""Request bodies of the account, key and token endpoints, and their answers."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from smsgate.accounts import passwords
from smsgate.accounts import scopes as scope_names
from smsgate.accounts.access import TokenFamily, TokenPair
from smsgate.accounts.models import Account, ApiKey
from smsgate.kit.clock import iso
from smsgate.kit.schema import Input

_SCOPE_NAMES: JsonDict = {"items": {"enum": list(scope_names.ALL)}}


# documented only: check_rules refuses with its own messages (code weak_password)
_PASSWORD_RULES: JsonDict = {
    "minLength": passwords.MIN_LENGTH,
    "maxLength": passwords.MAX_LENGTH,
    "description": f"{passwords.MIN_LENGTH} to {passwords.MAX_LENGTH} characters, at least 4 "
    "different ones, not the e-mail address",
}


class SignupIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ana@example.com", "password": "correct horse battery"}]
        }
    )

    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    password: str = Field(json_schema_extra=_PASSWORD_RULES)
    name: str | None = Field(default=None, max_length=200)


class LoginIn(Input):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class PasswordChangeIn(Input):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(json_schema_extra=_PASSWORD_RULES)


class KeyCreateIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "production"}]})

    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] | None = Field(default=None, json_schema_extra=_SCOPE_NAMES)


class TokenIn(Input):
    scopes: list[str] | None = Field(default=None, json_schema_extra=_SCOPE_NAMES)
    ttl: int | None = None


class RefreshIn(Input):
    refresh_token: str = Field(max_length=200)


class RevokeIn(Input):
    token: str = Field(max_length=4096)


def account_out(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "email": account.email,
        "name": account.name,
        "plan": account.plan,
        "region": account.region,
        "createdAt": iso(account.created_at),
    }


def key_out(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": sorted(key.scopes.split()),
        "createdAt": iso(key.created_at),
        "lastUsedAt": iso(key.last_used_at),
    }


def token_pair_out(pair: TokenPair) -> dict[str, Any]:
    return {
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
        "tokenType": "Bearer",
        "expiresAt": iso(pair.expires_at),
        "refreshExpiresAt": iso(pair.refresh_expires_at),
        "scopes": sorted(pair.scopes),
        "id": pair.family_id,
    }


def token_family_out(family: TokenFamily) -> dict[str, Any]:
    return {
        "id": family.id,
        "scopes": sorted(family.scopes),
        "createdAt": iso(family.created_at),
        "lastRefreshedAt": iso(family.last_refreshed_at),
        "expiresAt": iso(family.expires_at),
    }
