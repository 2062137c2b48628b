"""HTTP endpoints: templates and campaigns (scope `send` to change them, `read:messages` to read).

POST /api/campaigns takes JSON (`recipients` or a contacts `tag`) or a multipart form (`file`, a
CSV or XLSX whose first row names the columns); POST /api/campaigns/{id}/recipients adds rows to
a campaign the same ways (a file uploaded again sends nothing twice)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from pydantic import ConfigDict, Field

from smsgate.accounts.auth import ReadMessagesScope, SendScope
from smsgate.accounts.service import Principal
from smsgate.campaigns import rows, service, templates
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock, sheets
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id
from smsgate.kit.responses import JSONResponse, api_router, content_disposition
from smsgate.kit.schema import Input, json_body, parse
from smsgate.kit.sheets import Upload
from smsgate.storage.db import DbSession, ReadSession

router = api_router(tags=["campaigns"])

Value = str | int | float | bool | None
MAX_TEXT = 4000


class WhatsAppBinding(Input):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(
        min_length=2, max_length=15, pattern=r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$"
    )


class TemplateIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Recordatorio",
                    "message": "Hola {nombre}, tu cita es el {fecha} a las {hora}",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=MAX_TEXT)
    channel: Literal["sms", "whatsapp"] = "sms"
    whatsapp_template: WhatsAppBinding | None = None


class TemplatePatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    message: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    channel: Literal["sms", "whatsapp"] | None = None
    whatsapp_template: WhatsAppBinding | None = None


class PreviewIn(Input):
    rows: list[dict[str, Value]] = Field(min_length=1, max_length=100)


class CampaignIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Citas del lunes",
                    "message": "Hola {nombre}, tu cita es el {fecha} a las {hora}",
                    "recipients": [
                        {
                            "phoneNumber": "+525512345678",
                            "nombre": "Ana",
                            "fecha": "8 dic",
                            "hora": "10:00",
                        }
                    ],
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    message: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    template_id: str | None = None
    recipients: list[dict[str, Value]] | None = Field(default=None, max_length=sheets.MAX_ROWS)
    tag: str | None = Field(default=None, min_length=1, max_length=50)
    schedule_at: datetime | None = Field(
        default=None,
        strict=False,
        description="Send no sooner than this; without an offset, in the account's time zone.",
    )
    device_ids: list[str] | None = Field(default=None, max_length=50)
    channel: Literal["sms", "whatsapp"] = "sms"
    draft: bool = Field(
        default=False,
        description="Keep the rows and send nothing yet: the answer previews the first rows "
        "and counts the messages and segments; POST /api/campaigns/{id}/send sends it.",
    )


class SendDraftIn(Input):
    schedule_at: datetime | None = Field(default=None, strict=False)
    device_ids: list[str] | None = Field(default=None, max_length=50)
    phone_column: str | None = Field(
        default=None,
        max_length=64,
        description="The draft's column that holds the numbers, when it is not phoneNumber.",
    )


class RowsIn(Input):
    recipients: list[dict[str, Value]] | None = Field(default=None, max_length=sheets.MAX_ROWS)
    tag: str | None = Field(default=None, min_length=1, max_length=50)


_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV or XLSX"},
        "name": {"type": "string", "maxLength": 200},
        "message": {"type": "string", "maxLength": MAX_TEXT},
        "templateId": {"type": "string"},
        "scheduleAt": {"type": "string", "format": "date-time"},
        "deviceIds": {"type": "string", "description": "comma-separated"},
        "channel": {"type": "string", "enum": ["sms", "whatsapp"]},
        "draft": {"type": "string", "enum": ["true", "false"]},
    },
    "required": ["file", "name"],
}


def _body(model: type[Input], form: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "multipart/form-data": {"schema": form},
            },
        }
    }


def _rows_form() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"file": _FORM["properties"]["file"]},
        "required": ["file"],
    }


def _no_rows() -> ApiError:
    return bad_request(
        t("recipients: give the rows (recipients), a tag of contacts (tag) or a file (file)"),
        field="recipients",
    )


async def _rows(request: Request, principal: Principal, recipients: Any, tag: str | None) -> Upload:
    if (recipients is None) == (tag is None):
        raise _no_rows()
    if tag is not None:
        async with request.app.state.db.reading() as session:
            return await rows.tag_rows(session, principal.account_id, tag)
    if not recipients:
        raise bad_request(t("recipients: give at least one row"), field="recipients")
    return sheets.from_items(recipients)


_FORM_FIELDS = ("name", "message", "templateId", "scheduleAt", "deviceIds", "channel", "draft")


def _form_spec(fields: dict[str, str]) -> rows.Spec:
    """A campaign's fields as a form sends them (every value a string)."""
    raw: dict[str, Any] = {k: v for k, v in fields.items() if k in _FORM_FIELDS}
    if "deviceIds" in raw:
        raw["deviceIds"] = raw["deviceIds"].split(",")
    if "draft" in raw:
        raw["draft"] = sheets.checked(raw["draft"])
    return _spec(parse(CampaignIn, {**raw, "recipients": []}))


def _spec(body: CampaignIn) -> rows.Spec:
    return rows.Spec(
        name=body.name,
        text=body.message,
        template_id=body.template_id,
        schedule_at=body.schedule_at,
        device_ids=tuple(dict.fromkeys(body.device_ids or ())),
        channel=body.channel,
        draft=body.draft,
    )


# --- templates ------------------------------------------------------------------------------


@router.post("/api/templates", status_code=201)
async def create_template(
    body: TemplateIn, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    binding = body.whatsapp_template.model_dump() if body.whatsapp_template else None
    template = await templates.create(
        session, principal.account_id, body.name, body.message, body.channel, binding
    )
    return templates.template_out(template)


@router.get("/api/templates")
async def list_templates(principal: ReadMessagesScope, session: ReadSession) -> dict[str, Any]:
    found = await templates.all_of(session, principal.account_id)
    return {"data": [templates.template_out(x) for x in found], "nextCursor": None}


@router.get("/api/templates/{template_id}")
async def get_template(
    template_id: str, principal: ReadMessagesScope, session: ReadSession
) -> dict[str, Any]:
    return templates.template_out(
        await templates.get_template(session, principal.account_id, template_id)
    )


@router.patch("/api/templates/{template_id}")
async def patch_template(
    template_id: str, body: TemplatePatch, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    template = await templates.get_template(session, principal.account_id, template_id)
    templates.check(body.name, body.message, body.channel)
    if body.name is not None:
        template.name = body.name.strip()
    if body.message is not None:
        template.text = body.message
    if body.channel is not None:
        template.channel = body.channel
    if "whatsapp_template" in body.model_fields_set:
        template.whatsapp = body.whatsapp_template.model_dump() if body.whatsapp_template else None
    template.updated_at = clock.now()
    await session.flush()
    return templates.template_out(template)


@router.delete("/api/templates/{template_id}")
async def delete_template(
    template_id: str, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    await templates.delete(session, principal.account_id, template_id)
    return {"id": template_id, "deleted": True}


@router.post("/api/templates/{template_id}/preview")
async def preview_template(
    template_id: str, body: PreviewIn, principal: ReadMessagesScope, session: ReadSession
) -> dict[str, Any]:
    """The template as each row of variables would send it, with its encoding and segments."""
    template = await templates.get_template(session, principal.account_id, template_id)
    items = [{k: "" if v is None else str(v) for k, v in row.items()} for row in body.rows]
    return {"data": templates.preview(template.text, items)}


# --- campaigns ------------------------------------------------------------------------------


@router.post(
    "/api/campaigns",
    status_code=201,
    response_class=JSONResponse,
    openapi_extra=_body(CampaignIn, _FORM),
)
async def create_campaign(request: Request, principal: SendScope) -> JSONResponse:
    if sheets.is_form(request):
        fields, upload = await sheets.read_form(request)
        spec = _form_spec(fields)
    else:
        body = parse(CampaignIn, await json_body(request))
        spec = _spec(body)
        upload = await _rows(request, principal, body.recipients, body.tag)
    state = request.app.state
    answer = await service.create(state.db, state.send_writer, state.hub, principal, spec, upload)
    return JSONResponse(answer, status_code=201)


@router.post(
    "/api/campaigns/{campaign_id}/recipients",
    response_class=JSONResponse,
    openapi_extra=_body(RowsIn, _rows_form()),
)
async def add_recipients(campaign_id: str, request: Request, principal: SendScope) -> JSONResponse:
    """More rows for a campaign; rows it has already (by subscriber) are rejected as
    duplicates, never sent twice."""
    if not is_id(campaign_id):
        raise not_found("campaign")
    if sheets.is_form(request):
        _, upload = await sheets.read_form(request)
    else:
        body = parse(RowsIn, await json_body(request))
        upload = await _rows(request, principal, body.recipients, body.tag)
    state = request.app.state
    answer = await service.add_rows(
        state.db, state.send_writer, state.hub, principal, campaign_id, upload
    )
    return JSONResponse(answer)


@router.post("/api/campaigns/{campaign_id}/send", response_class=JSONResponse)
async def send_campaign(campaign_id: str, request: Request, principal: SendScope) -> JSONResponse:
    """Send a draft: now, or at `scheduleAt`; through `deviceIds` if given."""
    raw = await json_body(request)
    body = parse(SendDraftIn, raw) if raw is not None else SendDraftIn()
    answer = await service.send_draft(
        request.app.state.db,
        request.app.state.send_writer,
        request.app.state.hub,
        principal,
        campaign_id,
        body.schedule_at,
        body.device_ids,
        body.phone_column,
    )
    return JSONResponse(answer)


@router.get("/api/campaigns")
async def list_campaigns(
    principal: ReadMessagesScope,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    data, next_cursor = await service.list_campaigns(session, principal.account_id, limit, cursor)
    return {"data": data, "nextCursor": next_cursor}


@router.get("/api/campaigns/{campaign_id}")
async def get_campaign(
    campaign_id: str, principal: ReadMessagesScope, session: ReadSession
) -> dict[str, Any]:
    return await service.get_campaign(session, principal.account_id, campaign_id)


@router.post("/api/campaigns/{campaign_id}/cancel")
async def cancel_campaign(
    campaign_id: str, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    """Cancels what no phone has taken; what a phone holds is sent and reported as usual."""
    return await service.cancel(session, principal.account_id, campaign_id)


@router.get(
    "/api/campaigns/{campaign_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def campaign_report(
    campaign_id: str, principal: ReadMessagesScope, session: ReadSession
) -> Response:
    """Every recipient with its state, error and times, then the rejected rows: CSV."""
    text = await service.report(session, principal.account_id, campaign_id)
    return Response(
        content=text.encode("utf-8-sig"),  # the BOM: Excel then reads the accents right
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(f"campaign-{campaign_id}.csv")},
    )
