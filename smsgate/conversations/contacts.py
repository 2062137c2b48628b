"""Contacts: the people an account writes to, with a name, tags and fields of its own.

One contact per subscriber (kit.phones.subscriber: +52 1 55… and +52 55… are one), its number
kept as written. Whether a contact opted out is read from the opt-out list when it is shown,
never copied. A conversation with a contact shows the contact's name (unless the thread was
given one of its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.conversations.models import Contact, OptOut
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import batching, clock, phones, sheets
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id

CHUNK = 500  # subscribers in one IN (...)
MAX_TAGS = 20
MAX_TAG = 50
MAX_FIELDS = 30


def clean_tags(tags: Sequence[str], field: str = "tags") -> list[str]:
    """Tags trimmed, each once, in their order."""
    out = list(dict.fromkeys(tag.strip()[:MAX_TAG] for tag in tags if tag.strip()))
    if len(out) > MAX_TAGS:
        raise bad_request(
            t("{field}: at most {count} tags", field=field, count=MAX_TAGS), field=field
        )
    return out


def _fields(fields: Mapping[str, Any]) -> dict[str, str]:
    if len(fields) > MAX_FIELDS:
        raise bad_request(t("fields: at most {count} fields", count=MAX_FIELDS), field="fields")
    return {str(k).strip()[:64]: str(v)[:1000] for k, v in fields.items() if str(k).strip()}


def _number(raw: str, region: str, field: str = "phoneNumber") -> str:
    try:
        return phones.normalize(raw, region)
    except phones.InvalidPhoneNumber as exc:
        raise bad_request(
            t("{field}: {exc}", field=field, exc=exc), "invalid_phone_number", field
        ) from exc


async def opted_out(session: AsyncSession, account_id: str, keys: Sequence[str]) -> set[str]:
    """Which of these subscribers are on the account's opt-out list."""
    found: set[str] = set()
    for chunk in batching.chunks(keys, CHUNK):
        found |= set(
            (
                await session.execute(
                    select(OptOut.subscriber).where(
                        OptOut.account_id == account_id, OptOut.subscriber.in_(chunk)
                    )
                )
            ).scalars()
        )
    return found


def contact_out(contact: Contact, opted: bool) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "phoneNumber": contact.phone_number,
        "tags": list(contact.tags or []),
        "fields": dict(contact.fields or {}),
        "optedOut": opted,
        "createdAt": clock.iso(contact.created_at),
        "updatedAt": clock.iso(contact.updated_at),
    }


async def shown(session: AsyncSession, contacts: Sequence[Contact]) -> list[dict[str, Any]]:
    """Contacts as the API shows them, their opt-out state read in one query."""
    if not contacts:
        return []
    blocked = await opted_out(session, contacts[0].account_id, [c.subscriber for c in contacts])
    return [contact_out(c, c.subscriber in blocked) for c in contacts]


async def get_contact(session: AsyncSession, account_id: str, contact_id: str) -> Contact:
    found = await session.get(Contact, contact_id) if is_id(contact_id) else None
    if found is None or found.account_id != account_id:
        raise not_found("contact")
    return found


async def _by_subscriber(session: AsyncSession, account_id: str, key: str) -> Contact | None:
    return (
        await session.execute(
            select(Contact).where(Contact.account_id == account_id, Contact.subscriber == key)
        )
    ).scalar_one_or_none()


def _exists(existing: Contact) -> ApiError:
    return ApiError(
        409,
        t(
            "phoneNumber: {number} is already the contact {id}; change that one",
            number=existing.phone_number,
            id=existing.id,
        ),
        "contact_exists",
        extra={"field": "phoneNumber", "contactId": existing.id},
    )


async def create(
    session: AsyncSession,
    account_id: str,
    region: str,
    *,
    phone_number: str,
    name: str | None,
    tags: Sequence[str],
    fields: Mapping[str, Any],
) -> Contact:
    number = _number(phone_number, region)
    key = phones.subscriber(number)
    existing = await _by_subscriber(session, account_id, key)
    if existing is not None:
        raise _exists(existing)
    contact = Contact(
        account_id=account_id,
        name=(name or "").strip()[:200] or None,
        phone_number=number,
        subscriber=key,
        tags=clean_tags(tags),
        fields=_fields(fields),
    )
    session.add(contact)
    try:
        await session.flush()
    except IntegrityError as exc:  # added meanwhile by another request
        raise ApiError(409, t("phoneNumber: is already a contact"), "contact_exists") from exc
    return contact


async def update(
    session: AsyncSession, contact: Contact, region: str, changes: Mapping[str, Any]
) -> Contact:
    """Apply the given fields (a None name clears it)."""
    if "phone_number" in changes and changes["phone_number"] is not None:
        number = _number(changes["phone_number"], region)
        key = phones.subscriber(number)
        existing = await _by_subscriber(session, contact.account_id, key)
        if existing is not None and existing.id != contact.id:
            raise _exists(existing)
        contact.phone_number, contact.subscriber = number, key
    if "name" in changes:
        contact.name = (changes["name"] or "").strip()[:200] or None
    if changes.get("tags") is not None:
        contact.tags = clean_tags(changes["tags"])
    if changes.get("fields") is not None:
        contact.fields = _fields(changes["fields"])
    contact.updated_at = clock.now()
    await session.flush()
    return contact


async def page(
    session: AsyncSession, account_id: str, tag: str | None, limit: int, cursor: str | None
) -> tuple[list[Contact], str | None]:
    """Contacts in creation order, a page at a time; with `tag`, those that have it."""
    query = select(Contact).where(Contact.account_id == account_id)
    if cursor is not None:
        query = query.where(Contact.id > cursor)
    found: list[Contact] = []
    # a tag is a value inside a JSON list, compared in Python: pages are read until full
    while len(found) <= limit:
        batch = list((await session.execute(query.order_by(Contact.id).limit(500))).scalars())
        found += [c for c in batch if tag is None or tag in (c.tags or [])]
        if len(batch) < 500:
            break
        query = query.where(Contact.id > batch[-1].id)
    return found[:limit], found[limit - 1].id if len(found) > limit else None


async def tagged(session: AsyncSession, account_id: str, tag: str) -> list[Contact]:
    """Every contact of the account with the tag."""
    contacts, _ = await page(session, account_id, tag, 1_000_000, None)
    return contacts


async def all_tags(session: AsyncSession, account_id: str) -> list[str]:
    """Every tag the account's contacts carry, sorted (only that column is read)."""
    found = await session.execute(select(Contact.tags).where(Contact.account_id == account_id))
    return sorted({tag for (tags,) in found for tag in tags or ()})


async def names(session: AsyncSession, account_id: str, keys: Sequence[str]) -> dict[str, str]:
    """Contacts' names by subscriber."""
    out: dict[str, str] = {}
    for chunk in batching.chunks(keys, CHUNK):
        found = await session.execute(
            select(Contact.subscriber, Contact.name).where(
                Contact.account_id == account_id,
                Contact.subscriber.in_(chunk),
                Contact.name.is_not(None),
            )
        )
        out.update({key: name for key, name in found if name})
    return out


async def import_upload(
    session: AsyncSession,
    account_id: str,
    region: str,
    upload: sheets.Upload,
    fields: Mapping[str, str],
) -> dict[str, Any]:
    """Contacts from a spreadsheet as both the API and the dashboard post it: its number
    column (422 without one), `name`/`nombre` and `tags` columns if any, the form's `tags` for
    every row and `dryRun`."""
    return await import_rows(
        session,
        account_id,
        region,
        upload.rows,
        phone_column=upload.phone_column(),
        name_column=upload.key(sheets.NAME_COLUMNS),
        tags_column=upload.key(("tags", "etiquetas")),
        tags=clean_tags(fields.get("tags", "").split(",")),
        dry_run=sheets.checked(fields.get("dryRun", "")),
    )


async def import_rows(
    session: AsyncSession,
    account_id: str,
    region: str,
    rows: Sequence[tuple[int, dict[str, str]]],
    *,
    phone_column: str,
    name_column: str | None,
    tags_column: str | None,
    tags: Sequence[str],
    dry_run: bool,
) -> dict[str, Any]:
    """Contacts from a file's rows: new numbers are added, known ones (by subscriber) updated
    (their name and fields; tags added). A row whose number is invalid or repeats an earlier
    row's is reported with its row number and reason. `dry_run`: what would happen."""
    rejected: list[dict[str, Any]] = []
    wanted: dict[str, tuple[int, str, dict[str, str]]] = {}
    for number_row, values in rows:
        raw = values.get(phone_column, "")
        try:
            number = phones.normalize(raw, region)
        except phones.InvalidPhoneNumber:
            rejected.append(
                {"row": number_row, "phoneNumber": raw, "reason": "invalid_phone_number"}
            )
            continue
        key = phones.subscriber(number)
        if key in wanted:
            rejected.append({"row": number_row, "phoneNumber": raw, "reason": "duplicate"})
            continue
        wanted[key] = (number_row, number, values)
    existing: dict[str, Contact] = {}
    for chunk in batching.chunks(list(wanted), CHUNK):
        for contact in (
            await session.execute(
                select(Contact).where(
                    Contact.account_id == account_id, Contact.subscriber.in_(chunk)
                )
            )
        ).scalars():
            existing[contact.subscriber] = contact
    skipped = {phone_column, name_column, tags_column}
    created = updated = 0
    preview: list[dict[str, Any]] = []
    now = clock.now()
    for key, (number_row, number, values) in wanted.items():
        name = values.get(name_column or "", "").strip()[:200] or None
        row_tags = list(tags)
        if tags_column and values.get(tags_column):
            row_tags += [tag for part in values[tags_column].split(";") for tag in part.split(",")]
        fields = {k: v for k, v in values.items() if k not in skipped and v}
        if len(preview) < 3:
            preview.append(
                {
                    "row": number_row,
                    "phoneNumber": number,
                    "name": name,
                    "tags": clean_tags(row_tags, "tags"),
                    "fields": fields,
                }
            )
        known = existing.get(key)
        if known is None:
            created += 1
            if not dry_run:
                session.add(
                    Contact(
                        account_id=account_id,
                        name=name,
                        phone_number=number,
                        subscriber=key,
                        tags=clean_tags(row_tags),
                        fields=_fields(fields),
                        created_at=now,
                        updated_at=now,
                    )
                )
            continue
        updated += 1
        if not dry_run:
            known.name = name or known.name
            known.tags = clean_tags([*(known.tags or []), *row_tags])
            known.fields = _fields({**(known.fields or {}), **fields})
            known.updated_at = now
    if not dry_run:
        await session.flush()
    rejected.sort(key=lambda item: item["row"])
    return {
        "total": len(rows),
        "created": created,
        "updated": updated,
        "rejected": rejected,
        "preview": preview,
        "dryRun": dry_run,
    }


async def delete(session: AsyncSession, account_id: str, contact_id: str) -> None:
    """Delete the account's contact (404 when it has none by that id); its threads keep
    their messages and show the number."""
    await session.delete(await get_contact(session, account_id, contact_id))
