"""Message templates: a text with {variables} (`Hola {nombre}, tu cita es el {fecha}`), its
channel, and optionally the approved WhatsApp template it stands for. A preview renders it for
rows of variables, with each row's encoding and segment count (a variable can turn a GSM-7 text
into UCS-2, and one SMS into three)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.campaigns.models import Template
from smsgate.errors import bad_request, not_found
from smsgate.kit import clock, segments, sheets
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id

CHANNELS = ("sms", "whatsapp")


def template_out(template: Template) -> dict[str, Any]:
    return {
        "id": template.id,
        "name": template.name,
        "message": template.text,
        "channel": template.channel,
        "whatsappTemplate": template.whatsapp,
        "variables": sheets.variables(template.text),
        "createdAt": clock.iso(template.created_at),
        "updatedAt": clock.iso(template.updated_at),
    }


def check(name: str | None, text: str | None, channel: str | None) -> None:
    if name is not None and not name.strip():
        raise bad_request(t("name: give the template a name"), field="name")
    if text is not None and not text.strip():
        raise bad_request(t("message: is empty"), field="message")
    if channel is not None and channel not in CHANNELS:
        raise bad_request(
            t('channel: must be "sms" or "whatsapp", not "{channel}"', channel=channel),
            field="channel",
        )


async def create(
    session: AsyncSession,
    account_id: str,
    name: str,
    text: str,
    channel: str,
    whatsapp: dict[str, Any] | None,
) -> Template:
    """A new template (its fields checked)."""
    check(name, text, channel)
    template = Template(
        account_id=account_id, name=name.strip(), text=text, channel=channel, whatsapp=whatsapp
    )
    session.add(template)
    await session.flush()
    return template


async def get_template(
    session: AsyncSession, account_id: str, template_id: str, field: str | None = None
) -> Template:
    """The account's template, or 404 (naming the body's `field` that referred to it)."""
    found = await session.get(Template, template_id) if is_id(template_id) else None
    if found is None or found.account_id != account_id:
        raise not_found("template", field)
    return found


async def all_of(session: AsyncSession, account_id: str) -> list[Template]:
    query = select(Template).where(Template.account_id == account_id).order_by(Template.id)
    return list((await session.execute(query)).scalars())


def preview(text: str, items: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """The text as each row would send it: its encoding and segments, or the variables the row
    leaves empty."""
    out: list[dict[str, Any]] = []
    for index, values in enumerate(items, start=1):
        try:
            rendered = sheets.render(text, values)
        except sheets.MissingVariable:
            by_name = {name.strip().lower(): value for name, value in values.items()}
            missing = [name for name in sheets.variables(text) if not by_name.get(name.lower())]
            out.append({"row": index, "message": None, "missing": missing})
            continue
        info = segments.count(rendered)
        out.append(
            {
                "row": index,
                "message": rendered,
                "encoding": info.encoding,
                "segments": info.segments,
                "length": len(rendered),
            }
        )
    return out


async def delete(session: AsyncSession, account_id: str, template_id: str) -> None:
    """Delete the account's template (404 when it has none by that id); campaigns that used
    it keep their rows and report (one not yet sent can no longer add rows)."""
    await session.delete(await get_template(session, account_id, template_id))
