"""Dashboard pages for sending to many: campaigns (upload, preview, send, follow), the contacts
and templates they draw on, and the opt-out list they respect. Mounted with the rest of the
dashboard by routes.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from smsgate.accounts import service as accounts
from smsgate.accounts.service import Principal
from smsgate.billing import service as billing
from smsgate.campaigns import rows
from smsgate.campaigns import service as campaigns
from smsgate.campaigns import templates as campaign_templates
from smsgate.conversations import contacts, optouts
from smsgate.dashboard.frame import Poster, SendingPoster, reading
from smsgate.dashboard.frame import fragment as _fragment
from smsgate.dashboard.frame import local_time as _local_time
from smsgate.dashboard.frame import page as _page
from smsgate.dashboard.frame import sentence as _sentence
from smsgate.dashboard.frame import viewer as _viewer
from smsgate.devices import service as devices
from smsgate.errors import ApiError, bad_request
from smsgate.kit import phones, sheets
from smsgate.kit.i18n import Text, t
from smsgate.kit.responses import api_router, content_disposition
from smsgate.messages import states
from smsgate.storage.db import DbSession, ReadSession

router = api_router(include_in_schema=False)


# --- campaigns ------------------------------------------------------------------------------


async def _campaigns_list(
    request: Request,
    session: ReadSession | DbSession,
    principal: Principal,
    error: str | Text | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    found, _ = await campaigns.list_campaigns(session, principal.account_id, 50, None)
    kept = await campaign_templates.all_of(session, principal.account_id)
    return _page(
        request,
        "campaigns.html",
        principal,
        status=400 if error else 200,
        page="campaigns",
        title="Campaigns",
        campaigns=found,
        templates=kept,
        tags=await contacts.all_tags(session, principal.account_id),
        error=error,
        form=form or {},
    )


@router.get("/dashboard/campaigns")
async def campaigns_page(request: Request, session: ReadSession) -> Response:
    """The account's campaigns with their progress, and the form that starts a new one."""
    principal = await _viewer(request, session)
    return await _campaigns_list(request, session, principal)


@router.post("/dashboard/campaigns")
async def campaign_upload(principal: SendingPoster, request: Request) -> Response:
    """Step one: the file, a name and the text (or a template). Nothing is sent: the rows are
    kept as a draft, whose page previews them and asks when and through which phones."""
    form = await request.form()
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrf"}
    try:
        tag = fields.get("tag", "").strip()
        if tag and not getattr(form.get("file"), "filename", ""):
            async with reading(request) as session:
                upload = await rows.tag_rows(session, principal.account_id, tag)
        else:
            _, upload = await sheets.read_form(request)
        spec = rows.Spec(
            name=fields.get("name", ""),
            text=fields.get("message", "").strip() or None,
            template_id=fields.get("templateId") or None,
            draft=True,
        )
        state = request.app.state
        made = await campaigns.create(
            state.db, state.send_writer, state.hub, principal, spec, upload
        )
    except ApiError as exc:
        async with reading(request) as session:
            return await _campaigns_list(request, session, principal, _sentence(exc), fields)
    return RedirectResponse(f"/dashboard/campaigns/{made['id']}", status_code=303)


async def _campaign_view(
    request: Request,
    session: ReadSession | DbSession,
    principal: Principal,
    campaign_id: str,
    error: str | Text | None = None,
) -> HTMLResponse:
    campaign = await campaigns.get_campaign(session, principal.account_id, campaign_id)
    found = await devices.list_devices(session, principal.account_id)
    account = await accounts.get_account(session, principal.account_id)
    summary = await billing.summary(session, account, request.app.state.settings, 0)
    return _page(
        request,
        "campaign.html",
        principal,
        status=400 if error else 200,
        page="campaigns",
        title="Campaign",
        campaign=campaign,
        progress=_progress(campaign),
        devices=[d for d in found if d.type != "whatsapp"],
        left=summary["remaining"]["messages"],
        error=error,
    )


def _progress(campaign: dict[str, Any]) -> dict[str, Any]:
    """How far a campaign is: its recipients by state, as shares of the accepted rows."""
    counts = campaign["counts"]
    accepted = campaign["accepted"] or 1
    finished = sum(n for state, n in counts.items() if state != states.PROCESSING)
    return {
        "finished": finished,
        "percent": min(100, round(100 * finished / accepted)),
        "states": sorted(counts.items(), key=lambda item: states.ALL.index(item[0])),
    }


@router.get("/dashboard/campaigns/{campaign_id}")
async def campaign_page(campaign_id: str, request: Request, session: ReadSession) -> Response:
    """A draft's preview and its send form; a sent campaign's live progress, rejected rows and
    report."""
    principal = await _viewer(request, session)
    return await _campaign_view(request, session, principal, campaign_id)


@router.get("/dashboard/campaigns/{campaign_id}/progress", include_in_schema=False)
async def campaign_progress(campaign_id: str, request: Request, session: ReadSession) -> Response:
    """The progress bar and counts, refreshed by the page until the campaign ends."""
    principal = await _viewer(request, session)
    campaign = await campaigns.get_campaign(session, principal.account_id, campaign_id)
    final = campaign["state"] in (campaigns.DONE, campaigns.CANCELLED)
    return _fragment(
        request,
        principal,
        "_campaign_progress.html",
        final=final,
        campaign=campaign,
        progress=_progress(campaign),
    )


@router.post("/dashboard/campaigns/{campaign_id}/send")
async def campaign_send(
    campaign_id: str,
    principal: SendingPoster,
    request: Request,
    schedule: Annotated[str, Form(max_length=40)] = "",
    phone_column: Annotated[str, Form(alias="phoneColumn", max_length=64)] = "",
) -> Response:
    """Step two: which column holds the numbers, then send the draft now or at a local time,
    through the ticked phones (all of them when none is ticked)."""
    form = await request.form()
    chosen = [v for k, v in form.multi_items() if k == "device" and isinstance(v, str) and v]
    try:
        at = None
        if schedule.strip():
            at = datetime.fromisoformat(_local_time(schedule.strip(), principal.time_zone))
        await campaigns.send_draft(
            request.app.state.db,
            request.app.state.send_writer,
            request.app.state.hub,
            principal,
            campaign_id,
            at,
            chosen or None,
            phone_column or None,
        )
    except ApiError as exc:
        async with reading(request) as session:
            return await _campaign_view(request, session, principal, campaign_id, _sentence(exc))
    return RedirectResponse(f"/dashboard/campaigns/{campaign_id}", status_code=303)


@router.post("/dashboard/campaigns/{campaign_id}/cancel")
async def campaign_cancel(
    campaign_id: str, principal: Poster, request: Request, session: DbSession
) -> Response:
    try:
        await campaigns.cancel(session, principal.account_id, campaign_id)
    except ApiError as exc:
        return await _campaign_view(request, session, principal, campaign_id, _sentence(exc))
    return RedirectResponse(
        f"/dashboard/campaigns/{campaign_id}?done=campaign_cancelled", status_code=303
    )


@router.get("/dashboard/campaigns/{campaign_id}/report")
async def campaign_report(campaign_id: str, request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    text = await campaigns.report(session, principal.account_id, campaign_id)
    return Response(
        content=text.encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(f"campaign-{campaign_id}.csv")},
    )


# --- contacts and templates (reached from the campaigns page) -------------------------------


async def _contacts_view(
    request: Request,
    session: ReadSession | DbSession,
    principal: Principal,
    imported: dict[str, Any] | None = None,
    error: str | Text | None = None,
) -> HTMLResponse:
    tag = request.query_params.get("tag", "").strip()[:50] or None
    found, _ = await contacts.page(session, principal.account_id, tag, 100, None)
    return _page(
        request,
        "contacts.html",
        principal,
        status=400 if error else 200,
        page="campaigns",
        title="Contacts",
        contacts=await contacts.shown(session, found),
        tag=tag or "",
        imported=imported,
        error=error,
    )


@router.get("/dashboard/contacts")
async def contacts_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _contacts_view(request, session, principal)


@router.post("/dashboard/contacts/import")
async def contacts_import(principal: Poster, request: Request, session: DbSession) -> Response:
    """A spreadsheet of contacts: with "preview only" ticked, what would happen; otherwise
    done, and the same summary shown."""
    try:
        fields, upload = await sheets.read_form(request)
        imported = await contacts.import_upload(
            session, principal.account_id, principal.region, upload, fields
        )
    except ApiError as exc:
        return await _contacts_view(request, session, principal, error=_sentence(exc))
    return await _contacts_view(request, session, principal, imported=imported)


async def _templates_view(
    request: Request,
    session: ReadSession | DbSession,
    principal: Principal,
    error: str | Text | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    kept = await campaign_templates.all_of(session, principal.account_id)
    return _page(
        request,
        "templates.html",
        principal,
        status=400 if error else 200,
        page="campaigns",
        title="Templates",
        templates=[campaign_templates.template_out(x) for x in kept],
        error=error,
        form=form or {},
    )


@router.get("/dashboard/templates")
async def templates_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _templates_view(request, session, principal)


@router.post("/dashboard/templates")
async def template_create(
    principal: Poster,
    request: Request,
    session: DbSession,
    name: Annotated[str, Form(max_length=200)] = "",
    message: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    try:
        campaign_templates.check(name, message, "sms")
    except ApiError as exc:
        form = {"name": name, "message": message}
        return await _templates_view(request, session, principal, _sentence(exc), form)
    await campaign_templates.create(session, principal.account_id, name, message, "sms", None)
    return RedirectResponse("/dashboard/templates", status_code=303)


@router.post("/dashboard/templates/{template_id}/delete")
async def template_delete(
    template_id: str, principal: Poster, request: Request, session: DbSession
) -> Response:
    await campaign_templates.delete(session, principal.account_id, template_id)
    return RedirectResponse("/dashboard/templates?done=template_deleted", status_code=303)


# --- the opt-out list -----------------------------------------------------------------------


async def _opt_outs_view(
    request: Request,
    session: ReadSession | DbSession,
    principal: Principal,
    *,
    error: str | Text | None = None,
    number: str = "",
) -> HTMLResponse:
    found, _ = await optouts.list_opt_outs(session, principal.account_id, 100, None)
    return _page(
        request,
        "opt_outs.html",
        principal,
        status=400 if error else 200,
        page="conversations",
        title="Opt-outs",
        opt_outs=[optouts.opt_out_out(o) for o in found],
        error=error,
        number=number,
    )


@router.get("/dashboard/opt-outs")
async def opt_outs_page(request: Request, session: ReadSession) -> Response:
    """Who asked not to be written to (BAJA, STOP… or added by hand): never sent to again."""
    principal = await _viewer(request, session)
    return await _opt_outs_view(request, session, principal)


def _form_number(raw: str, region: str) -> str:
    try:
        return phones.normalize(raw, region)
    except phones.InvalidPhoneNumber as exc:
        raise bad_request(t("phoneNumber: {exc}", exc=exc), "invalid_phone_number") from exc


@router.post("/dashboard/opt-outs")
async def opt_out_add(
    principal: Poster,
    request: Request,
    session: DbSession,
    number: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    try:
        normalized = _form_number(number, principal.region)
    except ApiError as exc:
        return await _opt_outs_view(
            request, session, principal, error=_sentence(exc), number=number
        )
    await optouts.add_opt_out(session, principal.account_id, normalized, "api", None)
    return RedirectResponse("/dashboard/opt-outs?done=opt_out_added", status_code=303)


@router.post("/dashboard/opt-outs/remove")
async def opt_out_remove(
    principal: Poster,
    request: Request,
    session: DbSession,
    number: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    try:
        normalized = _form_number(number, principal.region)
    except ApiError as exc:
        return await _opt_outs_view(request, session, principal, error=_sentence(exc))
    await optouts.remove_opt_out(session, principal.account_id, normalized)
    return RedirectResponse("/dashboard/opt-outs?done=opt_out_removed", status_code=303)
