"""HTTP endpoints: inbox, conversations, opt-outs, account preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import ConfigDict, Field

from smsgate.accounts.auth import CurrentPrincipal, ReadMessagesScope, SendScope
from smsgate.accounts.preferences import AccountSettingsPatch, change_settings, settings_out
from smsgate.accounts.service import get_account
from smsgate.conversations import contacts, optouts, service
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock, phones, sheets
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id
from smsgate.kit.responses import JSONResponse, api_router
from smsgate.kit.schema import Input
from smsgate.messages import queries
from smsgate.messages import service as messages
from smsgate.messages.schemas import SendRequest, message_out
from smsgate.storage.db import Database, DbSession, ReadSession

router = api_router(tags=["conversations"])


class ReplyIn(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "Gracias, le llamamos hoy"}]}
    )

    message: str
    priority: int = Field(default=0, ge=-128, le=127)
    ttl: int | None = Field(default=None, gt=0)
    external_id: str | None = Field(default=None, min_length=1, max_length=255)


class ReadIn(Input):
    up_to: str | None = None


class ConversationPatch(Input):
    display_name: str | None = Field(default=None, max_length=200)
    archived: bool | None = None


class OptOutIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phoneNumber": "+5215555555555"}]})

    phone_number: str = Field(max_length=64)


@router.get("/api/v1/inbox")
async def inbox(
    principal: ReadMessagesScope,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    phone_number: Annotated[str | None, Query(alias="phoneNumber")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Received messages, newest first (SMS, MMS, data SMS, WhatsApp)."""
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    if device_id is not None:
        from smsgate.devices.service import get_device

        await get_device(session, principal.account_id, device_id)
    number = None
    if phone_number is not None:
        try:
            number = phones.normalize(phone_number, principal.region)
        except phones.InvalidPhoneNumber:
            number = phone_number.strip()  # short codes and alphanumeric senders
    filters = queries.MessageFilter(
        direction="in",
        device_id=device_id,
        phone_number=number,
        since=clock.zoned_filter(since, "since"),
        until=clock.zoned_filter(until, "until"),
    )
    data, next_cursor = await queries.list_messages(
        session, principal.account_id, filters, limit, cursor
    )
    return {"data": data, "nextCursor": next_cursor}


@router.get("/api/conversations")
async def list_conversations(
    principal: ReadMessagesScope,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
    unread: bool = False,
    q: Annotated[str | None, Query(max_length=100)] = None,
    archived: bool = False,
) -> dict[str, Any]:
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    page, next_cursor = await service.list_page(
        session,
        principal.account_id,
        limit=limit,
        cursor=cursor,
        unread=unread,
        query=q.strip() if q else None,
        archived=archived,
    )
    return {"data": await service.threads_out(session, page), "nextCursor": next_cursor}


@router.get("/api/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, principal: ReadMessagesScope, session: ReadSession
) -> dict[str, Any]:
    found = await service.get(session, principal.account_id, conversation_id)
    return (await service.threads_out(session, [found]))[0]


@router.patch("/api/conversations/{conversation_id}")
async def patch_conversation(
    conversation_id: str, body: ConversationPatch, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    conversation = await service.get(session, principal.account_id, conversation_id)
    given = body.model_fields_set
    if "display_name" in given:
        name = (body.display_name or "").strip()
        conversation.display_name = name or None
    if "archived" in given and body.archived is not None:
        conversation.archived_at = clock.now() if body.archived else None
    await session.flush()
    return (await service.threads_out(session, [conversation]))[0]


@router.get("/api/conversations/{conversation_id}/messages")
async def conversation_messages(
    conversation_id: str,
    principal: ReadMessagesScope,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    conversation = await service.get(session, principal.account_id, conversation_id)
    rows, next_cursor = await service.messages_page(session, conversation, limit, cursor)
    return {
        "data": [message_out(row, [recipient]) for row, recipient in rows],
        "nextCursor": next_cursor,
    }


@router.post("/api/conversations/{conversation_id}/send", status_code=202)
async def reply(
    conversation_id: str,
    body: ReplyIn,
    request: Request,
    principal: SendScope,
) -> JSONResponse:
    """A reply through the thread's device, SIM and channel, exactly like /api/v1/send (409
    `device_deleted` once that phone is gone). No session is held for the request: the send
    path takes the connection for its own transactions."""
    database: Database = request.app.state.db
    async with database.reading() as session:
        conversation = await service.get(session, principal.account_id, conversation_id)
    send = SendRequest.model_validate(
        {
            **service.reply_fields(conversation),
            "message": body.message,
            "priority": body.priority,
            "ttl": body.ttl,
            "externalId": body.external_id,
        }
    )
    message, created = await messages.app_sender(request).send(principal, send)
    message["conversationId"] = conversation.id
    return JSONResponse(message, status_code=202 if created else 200)


@router.post("/api/conversations/{conversation_id}/read")
async def mark_read(
    conversation_id: str,
    principal: ReadMessagesScope,
    session: DbSession,
    body: ReadIn | None = None,
) -> dict[str, Any]:
    conversation = await service.get(session, principal.account_id, conversation_id)
    updated = await service.mark_read(session, conversation, (body or ReadIn()).up_to)
    return (await service.threads_out(session, [updated]))[0]


@router.get("/api/opt-outs")
async def list_opt_outs(
    principal: ReadMessagesScope,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page, next_cursor = await optouts.list_opt_outs(session, principal.account_id, limit, cursor)
    return {"data": [optouts.opt_out_out(e) for e in page], "nextCursor": next_cursor}


def _number(raw: str, region: str) -> str:
    try:
        return phones.normalize(raw, region)
    except phones.InvalidPhoneNumber as exc:
        raise bad_request(
            t("phoneNumber: {exc}", exc=exc), "invalid_phone_number", "phoneNumber"
        ) from exc


@router.post("/api/opt-outs", status_code=201)
async def add_opt_out(body: OptOutIn, principal: SendScope, session: DbSession) -> dict[str, Any]:
    number = _number(body.phone_number, principal.region)
    await optouts.add_opt_out(session, principal.account_id, number, "api", None)
    return {"phoneNumber": number, "optedOut": True}


@router.delete("/api/opt-outs/{phone_number}")
async def remove_opt_out(
    phone_number: str, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    number = _number(phone_number, principal.region)
    if not await optouts.remove_opt_out(session, principal.account_id, number):
        raise ApiError(  # a number missing from the list is a missing resource: 404
            404,
            t("{number} is not on the opt-out list", number=number),
            "not_found",
            extra={"field": "phoneNumber"},
        )
    return {"phoneNumber": number, "optedOut": False}


@router.get("/api/account/settings")
async def account_settings(principal: CurrentPrincipal, session: ReadSession) -> dict[str, Any]:
    return settings_out(await get_account(session, principal.account_id))


@router.patch("/api/account/settings")
async def patch_account_settings(
    body: AccountSettingsPatch, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    account = await get_account(session, principal.account_id)
    await change_settings(session, account, body)
    return settings_out(account)


# --- contacts -------------------------------------------------------------------------------


class ContactIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Ana López", "phoneNumber": "+525512345678", "tags": ["pacientes"]}
            ]
        }
    )

    phone_number: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=contacts.MAX_TAGS)
    fields: dict[str, str] = Field(default_factory=dict, max_length=contacts.MAX_FIELDS)


class ContactPatch(Input):
    phone_number: str | None = Field(default=None, min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = Field(default=None, max_length=contacts.MAX_TAGS)
    fields: dict[str, str] | None = Field(default=None, max_length=contacts.MAX_FIELDS)


@router.post("/api/contacts", status_code=201)
async def create_contact(
    body: ContactIn, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    contact = await contacts.create(
        session,
        principal.account_id,
        principal.region,
        phone_number=body.phone_number,
        name=body.name,
        tags=body.tags,
        fields=body.fields,
    )
    return (await contacts.shown(session, [contact]))[0]


@router.get("/api/contacts")
async def list_contacts(
    principal: ReadMessagesScope,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
) -> dict[str, Any]:
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    found, next_cursor = await contacts.page(session, principal.account_id, tag, limit, cursor)
    return {"data": await contacts.shown(session, found), "nextCursor": next_cursor}


@router.get("/api/contacts/{contact_id}")
async def get_contact(
    contact_id: str, principal: ReadMessagesScope, session: ReadSession
) -> dict[str, Any]:
    contact = await contacts.get_contact(session, principal.account_id, contact_id)
    return (await contacts.shown(session, [contact]))[0]


@router.patch("/api/contacts/{contact_id}")
async def patch_contact(
    contact_id: str, body: ContactPatch, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    contact = await contacts.get_contact(session, principal.account_id, contact_id)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    await contacts.update(session, contact, principal.region, changes)
    return (await contacts.shown(session, [contact]))[0]


@router.delete("/api/contacts/{contact_id}")
async def delete_contact(
    contact_id: str, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    await contacts.delete(session, principal.account_id, contact_id)
    return {"id": contact_id, "deleted": True}


_IMPORT_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV or XLSX",
                        },
                        "tags": {"type": "string", "description": "comma-separated, for every row"},
                        "dryRun": {"type": "string", "enum": ["true", "false"]},
                    },
                    "required": ["file"],
                }
            }
        },
    }
}


@router.post("/api/contacts/import", openapi_extra=_IMPORT_FORM)
async def import_contacts(
    request: Request, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    """Contacts from a spreadsheet (first row: column names; one of them phoneNumber, and
    optionally name/nombre and tags; the other columns become fields). `dryRun=true` shows what
    would happen and changes nothing."""
    fields, upload = await sheets.read_form(request)
    return await contacts.import_upload(
        session, principal.account_id, principal.region, upload, fields
    )
