"""Rows of people from a spreadsheet (a campaign's, a contact import's): a CSV or XLSX file, a
multipart form that carries one, or JSON; and the text with {variables} each row fills in."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from smsgate.errors import ApiError, bad_request
from smsgate.kit.i18n import t
from smsgate.kit.schema import storable

MAX_ROWS = 20_000  # one upload's rows (a day's agenda is far fewer; a bigger list is split)
MAX_COLUMNS = 50
MAX_CELL = 1000  # characters of one value
# the column that holds the number: the API's name first, then what spreadsheets call it
PHONE_COLUMNS = ("phonenumber", "phone_number", "phone", "telefono", "teléfono", "celular", "móvil")
NAME_COLUMNS = ("name", "nombre")
# {nombre}, {fecha de la cita}: letters, digits, spaces, _ . -
_VARIABLE = re.compile(r"\{([^{}\n]{1,64})\}")


@dataclass(frozen=True)
class Upload:
    """Rows with their numbers as the person counts them (a file's first data row is row 2,
    under its header; a JSON list's first item is row 1)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, str]], ...]

    def with_phone(self, column: str) -> Upload:
        """The rows with `column` read as their phone number (a column named otherwise)."""
        rows = tuple(
            (n, {**values, "phoneNumber": values.get(column, "")}) for n, values in self.rows
        )
        return Upload(("phoneNumber", *(c for c in self.columns if c != "phoneNumber")), rows)

    def phone_column(self) -> str:
        """The column that holds the numbers; 422 `missing_phone_column` when none does."""
        column = self.key(PHONE_COLUMNS)
        if column is None:
            raise ApiError(
                422,
                t(
                    "file: no phoneNumber column; the first row names the columns (it has: "
                    "{value})",
                    value=", ".join(self.columns) or "-",
                ),
                "missing_phone_column",
                extra={"field": "file"},
            )
        return column

    def key(self, wanted: Sequence[str]) -> str | None:
        """The column (as written) whose name, without case or spaces, is one of `wanted`."""
        for column in self.columns:
            if column.strip().lower() in wanted:
                return column
        return None


def _too_many() -> ApiError:
    return bad_request(
        t("file: has more than {count} rows; split it into several uploads", count=MAX_ROWS),
        "too_many_rows",
        "file",
    )


def _table(cells: list[list[str]], first_row: int) -> Upload:
    """A header row and the rows under it (empty ones skipped, their numbers kept)."""
    if not cells or not any(c.strip() for c in cells[0]):
        raise bad_request(
            t("file: is empty; its first row names the columns, one of them phoneNumber"),
            "empty_file",
            "file",
        )
    header = [storable(c).strip()[:64] for c in cells[0]]
    if len(header) > MAX_COLUMNS:
        raise bad_request(
            t("file: has more than {count} columns", count=MAX_COLUMNS), "too_many_columns", "file"
        )
    rows = []
    for offset, cell_row in enumerate(cells[1:], start=1):
        if not any(c.strip() for c in cell_row):
            continue
        values = {
            name: storable(value).strip()[:MAX_CELL]
            for name, value in zip(header, cell_row, strict=False)
            if name
        }
        rows.append((first_row + offset, values))
        if len(rows) > MAX_ROWS:
            raise _too_many()
    return Upload(tuple(name for name in header if name), tuple(rows))


def read_csv(data: bytes) -> Upload:
    """A CSV as spreadsheets save it: UTF-8 (with or without its BOM) or, failing that,
    Windows-1252 (Excel's "CSV" in Spanish); commas, semicolons (Excel in locales that write
    decimals with a comma) or tabs."""
    if b"\x00" in data:  # no text file holds NUL: an image, a PDF, an old .xls
        raise bad_request(
            t("file: is not a spreadsheet (CSV or XLSX) but another kind of file"),
            "invalid_file",
            "file",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    try:
        cells = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise bad_request(
            t("file: is not a CSV file this server can read ({reason})", reason=str(exc)),
            "invalid_file",
            "file",
        ) from exc
    return _table(cells, 1)


def read_xlsx(data: bytes) -> Upload:
    """The first sheet of an Excel workbook; numbers written as numbers (5512345678) read as
    their digits, not as 5512345678.0."""
    from openpyxl import load_workbook  # only an XLSX upload needs it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise bad_request(
            t("file: is not an Excel (.xlsx) workbook this server can read"),
            "invalid_file",
            "file",
        ) from exc
    try:
        sheet = book.worksheets[0]
        cells: list[list[str]] = []
        for values in sheet.iter_rows(values_only=True):
            cells.append([_cell(value) for value in values[: MAX_COLUMNS + 1]])
            if len(cells) > MAX_ROWS * 2:  # stop reading: far too long, even with blank rows
                break
    finally:
        book.close()
    return _table(cells, 1)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_file(name: str, content_type: str, data: bytes) -> Upload:
    """An uploaded file, by its kind: an XLSX workbook (a zip), or else CSV text."""
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(".xlsx"):
        return read_xlsx(data)
    return read_csv(data)


def from_items(items: Sequence[Mapping[str, Any]]) -> Upload:
    """Rows given as JSON objects (`[{"phoneNumber": …, "nombre": …}]`)."""
    if len(items) > MAX_ROWS:
        raise bad_request(
            t("recipients: at most {count} at once", count=MAX_ROWS), "too_many_rows", "recipients"
        )
    columns: dict[str, None] = {}
    rows = []
    for index, item in enumerate(items, start=1):
        values = {str(k)[:64]: _json_value(v)[:MAX_CELL] for k, v in item.items()}
        columns.update(dict.fromkeys(values))
        rows.append((index, values))
    return Upload(tuple(columns), tuple(rows))


def _json_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def variables(text: str) -> list[str]:
    """The {variables} of a text, in order, each once."""
    return list(dict.fromkeys(match.strip() for match in _VARIABLE.findall(text)))


class MissingVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def render(text: str, values: Mapping[str, str]) -> str:
    """The text with each {variable} replaced by the row's value (column names compared without
    case); a variable the row leaves empty raises MissingVariable."""
    by_name = {name.strip().lower(): value for name, value in values.items()}

    def fill(match: re.Match[str]) -> str:
        value = by_name.get(match.group(1).strip().lower(), "")
        if not value:
            raise MissingVariable(match.group(1).strip())
        return value

    return _VARIABLE.sub(fill, text)


def unknown_variables(text: str, columns: Sequence[str]) -> list[str]:
    """The text's variables that no column provides."""
    known = {column.strip().lower() for column in columns}
    return [name for name in variables(text) if name.lower() not in known]


def checked(value: str) -> bool:
    """A form's yes/no field (a checkbox's "on", "true", "1", "yes", "sí")."""
    return value.strip().lower() in ("true", "1", "on", "yes", "sí", "si")


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


async def read_form(request: Request) -> tuple[dict[str, str], Upload]:
    """A multipart form's text fields (a repeated or comma-separated deviceIds joined by commas)
    and the rows of its `file`."""
    try:
        form = await request.form(max_files=1, max_fields=20)
    except Exception as exc:  # a broken multipart body is the client's error
        raise bad_request(t("request body is not a valid multipart form"), field="file") from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request(
            t("file: attach the CSV or XLSX file (its first row names the columns)"), field="file"
        )
    data = await upload.read()
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    devices = [
        part.strip()
        for k, v in form.multi_items()
        if k == "deviceIds" and isinstance(v, str)
        for part in v.split(",")
        if part.strip()
    ]
    if devices:
        fields["deviceIds"] = ",".join(devices)
    return fields, read_file(upload.filename or "", upload.content_type or "", data)
