"""Conversations: the threads, one thread, replying."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from smsgate.accounts.service import Principal
from smsgate.conversations import service as conversations
from smsgate.dashboard.frame import (
    SendingPoster,
    reading,
    template_body,
)
from smsgate.dashboard.frame import (
    fragment as _fragment,
)
from smsgate.dashboard.frame import (
    page as _page,
)
from smsgate.dashboard.frame import (
    sentence as _sentence,
)
from smsgate.dashboard.frame import (
    viewer as _viewer,
)
from smsgate.errors import ApiError
from smsgate.kit.i18n import Text
from smsgate.kit.responses import api_router
from smsgate.messages import service as messages
from smsgate.messages.schemas import SendRequest, message_out
from smsgate.storage.db import Database, DbSession, ReadSession

router = api_router(include_in_schema=False)


async def _thread(
    request: Request, session: DbSession, principal: Principal, conversation_id: str
) -> Any:
    """A thread, marked read (the person is looking at it), with its last 100 messages. The
    page refreshes it every few seconds: it is marked in a transaction that writes only when
    something is unread, so an open thread holds no write lock while nothing arrives."""
    found = await conversations.get(session, principal.account_id, conversation_id)
    if await conversations.is_unread(session, found):
        await session.rollback()  # frees the connection (SQLite has one) for the write below
        database: Database = request.app.state.db
        async with database.transaction() as writing:
            found = await conversations.get(writing, principal.account_id, conversation_id)
            found = await conversations.mark_read(writing, found, None)
    rows, _ = await conversations.messages_page(session, found, 100, None)
    return found, [message_out(row, [recipient]) for row, recipient in reversed(rows)]


@router.get("/dashboard/conversations/{conversation_id}/thread", include_in_schema=False)
async def thread_fragment(conversation_id: str, request: Request, session: ReadSession) -> Response:
    """The open thread's messages, refreshed by the page: new replies and states appear."""
    principal = await _viewer(request, session)
    _, thread = await _thread(request, session, principal, conversation_id)
    return _fragment(request, principal, "_thread.html", thread=thread)


async def _threads(request: Request, session: DbSession, principal: Principal) -> list[Any]:
    query = request.query_params.get("q")
    page, _ = await conversations.list_page(
        session,
        principal.account_id,
        limit=100,
        cursor=None,
        unread=False,
        query=query.strip() if query else None,
        archived=False,
    )
    return await conversations.threads_out(session, page)


@router.get("/dashboard/conversations/list", include_in_schema=False)
async def threads_fragment(request: Request, session: ReadSession) -> Response:
    """The thread list (unread badges, last message), refreshed by the page."""
    principal = await _viewer(request, session)
    current = request.query_params.get("current")
    return _fragment(
        request,
        principal,
        "_threads.html",
        threads=await _threads(request, session, principal),
        current={"id": current} if current else None,
    )


async def _conversations_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    conversation_id: str | None,
    error: str | Text | None = None,
) -> HTMLResponse:
    query = request.query_params.get("q")
    current = None
    thread: list[dict[str, Any]] = []
    if conversation_id:
        found, thread = await _thread(request, session, principal, conversation_id)  # read on open
        current = (await conversations.threads_out(session, [found]))[0]
    keep = {"q": query or "", **({"current": conversation_id} if conversation_id else {})}
    return _page(
        request,
        "conversations.html",
        principal,
        page="conversations",
        title="Conversations",
        threads=await _threads(request, session, principal),  # after the read: counts are fresh
        current=current,
        thread=thread,
        q=query,
        list_query=urlencode(keep),
        error=error,
    )


@router.get("/dashboard/conversations")
async def conversations_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _conversations_page(request, session, principal, None)


@router.get("/dashboard/conversations/{conversation_id}")
async def conversation_page(
    conversation_id: str, request: Request, session: ReadSession
) -> Response:
    principal = await _viewer(request, session)
    return await _conversations_page(request, session, principal, conversation_id)


@router.post("/dashboard/conversations/{conversation_id}")
async def reply(
    principal: SendingPoster,
    conversation_id: str,
    request: Request,
    message: Annotated[str, Form(max_length=5000)] = "",
    wa_template: Annotated[str, Form(max_length=512)] = "",
    wa_language: Annotated[str, Form(max_length=15)] = "",
    wa_values: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    async with reading(request) as session:
        thread = await conversations.get(session, principal.account_id, conversation_id)
    try:
        fields: dict[str, Any] = {**conversations.reply_fields(thread), "message": message}
        if thread.family == "whatsapp" and wa_template.strip():  # after the 24-hour window
            fields["template"] = template_body(wa_template, wa_language, wa_values)
            fields["message"] = message.strip() or None
        body = SendRequest.model_validate(fields)
        await messages.app_sender(request).send(principal, body)
    except (ValidationError, ApiError) as exc:
        async with reading(request) as session:
            return await _conversations_page(
                request, session, principal, conversation_id, _sentence(exc)
            )
    return RedirectResponse(f"/dashboard/conversations/{conversation_id}", status_code=303)
