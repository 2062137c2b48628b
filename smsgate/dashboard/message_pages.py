"""Sending, and the messages sent and received: the list, one message, cancel, edit, resend."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from smsgate.accounts import preferences
from smsgate.accounts.service import Principal
from smsgate.dashboard.frame import (
    Poster,
    SendingPoster,
    reading,
    template_body,
)
from smsgate.dashboard.frame import (
    fragment as _fragment,
)
from smsgate.dashboard.frame import (
    local_time as _local_time,
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
from smsgate.devices import service as devices
from smsgate.errors import ApiError
from smsgate.kit import clock, phones
from smsgate.kit.i18n import Text, t
from smsgate.kit.ids import is_id
from smsgate.kit.responses import api_router
from smsgate.messages import queries, states
from smsgate.messages import service as messages
from smsgate.messages.schemas import SendRequest
from smsgate.notify.hub import AppHub
from smsgate.storage.db import DbSession, ReadSession

router = api_router(include_in_schema=False)


@router.get("/dashboard/send")
async def send_page(
    request: Request,
    session: ReadSession,
    sent: str = "",
    to: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """The send form; with `sent`, after the form's redirect, the message just sent (a reload
    shows it again and sends nothing); with `to`, the form addressed to that number (a thread
    whose phone was deleted links here)."""
    principal = await _viewer(request, session)
    found = await devices.list_devices(session, principal.account_id)
    result = None
    if sent and is_id(sent):
        with contextlib.suppress(ApiError):  # not this account's, or deleted: the empty form
            result = await messages.get_message(session, principal.account_id, sent)
    return _page(
        request,
        "send.html",
        principal,
        page="send",
        title="Send",
        devices=found,
        result=result,
        numbers=to,
    )


@router.post("/dashboard/send")
async def send_form(
    principal: SendingPoster,
    request: Request,
    numbers: Annotated[str, Form(max_length=5000)] = "",
    message: Annotated[str, Form(max_length=5000)] = "",
    device: Annotated[str, Form()] = "",
    channel: Annotated[str, Form()] = "sms",
    priority: Annotated[str, Form()] = "0",
    ttl: Annotated[str, Form()] = "",
    schedule: Annotated[str, Form(max_length=40)] = "",
    wa_template: Annotated[str, Form(max_length=512)] = "",
    wa_language: Annotated[str, Form(max_length=15)] = "",
    wa_values: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    recipients = [n.strip() for n in numbers.replace(",", "\n").splitlines() if n.strip()]
    try:
        fields: dict[str, Any] = {
            "channel": channel,
            "phoneNumbers": recipients,
            "message": message,
            "deviceId": device or None,
            "priority": int(priority) if priority.lstrip("-").isdigit() else priority,
        }
        if ttl.strip():
            fields["ttl"] = int(ttl) if ttl.strip().isdigit() else ttl
        if channel == "whatsapp" and wa_template.strip():
            # an approved template (the only way to write first, or after 24 hours): its body's
            # parameters one per line, the text box left empty
            fields["template"] = template_body(wa_template, wa_language, wa_values)
            fields["message"] = message.strip() or None
        if schedule.strip():
            fields["scheduleAt"] = _local_time(schedule.strip(), principal.time_zone)
        body = SendRequest.model_validate(fields)
        result, _ = await messages.app_sender(request).send(principal, body)
        # after a POST, a redirect: reloading the result must not send the message again
        return RedirectResponse(f"/dashboard/send?sent={result['id']}", status_code=303)
    except (ValidationError, ApiError) as exc:
        error = _sentence(exc)
    async with reading(request) as session:  # refused: the form again, as it was filled
        found = await devices.list_devices(session, principal.account_id)
    return _page(
        request,
        "send.html",
        principal,
        page="send",
        title="Send",
        devices=found,
        error=error,
        numbers=numbers,
        message=message,
        form={
            "channel": channel,
            "priority": priority,
            "ttl": ttl,
            "device": device,
            "schedule": schedule,
            "wa_template": wa_template,
            "wa_language": wa_language,
            "wa_values": wa_values,
        },
    )


def _day(value: str, field: str, zone: str, end: bool = False) -> datetime | None:
    """A date from the filter form (YYYY-MM-DD), the account's day: its midnight in its time
    zone; `end` gives the next midnight."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError as exc:
        raise ValueError(t("{field}: use a date like 2026-11-27", field=field)) from exc
    if end:
        day += timedelta(days=1)
    return day.replace(tzinfo=preferences.zone(zone)).astimezone(UTC)


@router.get("/dashboard/messages")
async def messages_page(request: Request, session: ReadSession) -> Response:
    """Messages filtered by direction, state, device, number and dates, newest first, with
    cursor paging (the same query as GET /api/v1/messages)."""
    principal = await _viewer(request, session)
    query = request.query_params
    form = {
        name: query.get(name, "").strip()
        for name in ("direction", "state", "device", "number", "since", "until")
    }
    cursor = query.get("cursor") or None
    error: str | Text | None = None
    data: list[dict[str, Any]] = []
    next_cursor = None
    try:
        number = phones.normalize(form["number"], principal.region) if form["number"] else None
        filters = queries.MessageFilter(
            direction=form["direction"] if form["direction"] in ("in", "out") else None,
            # "failed" finds every message with a failed recipient, partly delivered ones too
            state=form["state"]
            if form["state"] in states.ALL and form["state"] != states.FAILED
            else None,
            recipient_state=states.FAILED if form["state"] == states.FAILED else None,
            scheduled=form["state"] == "scheduled",
            device_id=form["device"] or None,
            phone_number=number,
            since=_day(form["since"], "since", principal.time_zone),
            until=_day(form["until"], "until", principal.time_zone, end=True),
        )
        if cursor is not None and not is_id(cursor):
            raise ValueError(t("this page link is broken; start from the first page"))
        data, next_cursor = await queries.list_messages(
            session, principal.account_id, filters, 50, cursor
        )
    except (ValueError, phones.InvalidPhoneNumber) as exc:
        reason = exc.args[0] if exc.args else ""
        error = reason if isinstance(reason, Text) else str(exc)  # in the page's language
    found = await devices.list_devices(session, principal.account_id)
    keep = {name: value for name, value in form.items() if value}
    return _page(
        request,
        "messages.html",
        principal,
        page="messages",
        title="Messages",
        messages=data,
        form=form,
        states=states.ALL,
        devices=[devices.device_out(d) for d in found],
        next_url=f"/dashboard/messages?{urlencode({**keep, 'cursor': next_cursor})}"
        if next_cursor
        else None,
        first_url=f"/dashboard/messages?{urlencode(keep)}" if cursor else None,
        error=error,
    )


@router.get("/dashboard/messages/{message_id}/recipients", include_in_schema=False)
async def message_recipients(message_id: str, request: Request, session: ReadSession) -> Response:
    """A message's recipients and states, refreshed until the message is final."""
    principal = await _viewer(request, session)
    message = await messages.get_message(session, principal.account_id, message_id)
    return _fragment(
        request,
        principal,
        "_recipients.html",
        final=message["state"] in states.FINAL,
        message=message,
    )


@router.get("/dashboard/messages/{message_id}")
async def message_page(message_id: str, request: Request, session: ReadSession) -> Response:
    """One message: its recipients and its state history as a timeline; what can be done with
    it (cancel while no phone sent it, resend to the numbers that failed)."""
    principal = await _viewer(request, session)
    return await _message_page(request, session, principal, message_id)


async def _message_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    message_id: str,
    error: str | Text | None = None,
) -> HTMLResponse:
    message = await messages.get_message(session, principal.account_id, message_id)
    return _page(
        request,
        "message.html",
        principal,
        page="messages",
        title=message["id"],
        message=message,
        cancellable=message["direction"] == "out"
        and message["state"] == states.PROCESSING
        and not message.get("cancelRequested"),
        resendable=_resendable(message),
        editable=_editable(message),
        local_schedule=_local_input(message.get("scheduleAt"), principal.time_zone),
        error=error,
    )


def _editable(message: dict[str, Any]) -> bool:
    """A scheduled text still waiting for its time (messages.service.edit_scheduled's rule,
    asked again there)."""
    at = message.get("scheduleAt")
    return (
        message["direction"] == "out"
        and message["state"] == states.PROCESSING
        and message["channel"] in ("sms", "whatsapp")
        and not message.get("template")
        and not message.get("isEncrypted")
        and not message.get("cancelRequested")
        and at is not None
        and datetime.fromisoformat(at.replace("Z", "+00:00")) > clock.now()
    )


def _local_input(value: str | None, zone_name: str) -> str:
    """A stored time as a datetime-local field shows it, in the account's zone."""
    if not value:
        return ""
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.astimezone(preferences.zone(zone_name)).strftime("%Y-%m-%dT%H:%M")


def _resendable(message: dict[str, Any]) -> list[str]:
    """The numbers a sent message failed to reach, when it can be sent again as it was."""
    if message["direction"] != "out" or message.get("isEncrypted"):
        return []
    return [r["phoneNumber"] for r in message["recipients"] if r["state"] == states.FAILED]


@router.post("/dashboard/messages/{message_id}/cancel")
async def cancel_form(
    message_id: str, principal: Poster, request: Request, session: DbSession, hub: AppHub
) -> Response:
    """Cancel a send no phone has sent yet (a scheduled reminder, one still queued); a phone
    that holds it is asked, once this commits."""
    try:
        _, device_id = await messages.cancel_message(session, hub, principal.account_id, message_id)
    except ApiError as exc:
        return await _message_page(request, session, principal, message_id, _sentence(exc))
    done = "cancelling" if device_id is not None else "cancelled"
    return RedirectResponse(f"/dashboard/messages/{message_id}?done={done}", status_code=303)


@router.post("/dashboard/messages/{message_id}/edit")
async def edit_form(
    message_id: str,
    principal: Poster,
    request: Request,
    session: DbSession,
    message: Annotated[str, Form(max_length=5000)] = "",
    schedule: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A scheduled reminder's text and local time, changed while it waits."""
    try:
        at = None
        if schedule.strip():
            at = datetime.fromisoformat(_local_time(schedule.strip(), principal.time_zone))
        await messages.edit_scheduled(session, principal, message_id, message or None, at)
    except ValidationError as exc:
        return await _message_page(request, session, principal, message_id, _sentence(exc))
    except ApiError as exc:
        return await _message_page(request, session, principal, message_id, _sentence(exc))
    return RedirectResponse(f"/dashboard/messages/{message_id}?done=edited", status_code=303)


@router.post("/dashboard/messages/{message_id}/resend")
async def resend_form(message_id: str, principal: SendingPoster, request: Request) -> Response:
    """The same message again, to the numbers it failed to reach: a new send."""
    async with reading(request) as session:
        message = await messages.get_message(session, principal.account_id, message_id)
        numbers = _resendable(message)
        if not numbers:
            error = t("this message has no failed number to send to again")
            return await _message_page(request, session, principal, message_id, error)
    fields: dict[str, Any] = {
        "channel": message["channel"],
        "phoneNumbers": numbers,
        "message": message["message"],
        "priority": message["priority"],
    }
    for name in ("mediaUrls", "template", "port"):
        if message.get(name):
            fields[name] = message[name]
    try:
        body = SendRequest.model_validate(fields)
        result, _ = await messages.app_sender(request).send(principal, body)
    except (ValidationError, ApiError) as exc:
        async with reading(request) as session:
            return await _message_page(request, session, principal, message_id, _sentence(exc))
    return RedirectResponse(f"/dashboard/messages/{result['id']}", status_code=303)
