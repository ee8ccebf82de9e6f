"""Bulk import: a CSV file read into the bodies of POST /schedule-post, one per row, each
with the line of the file it starts on (the header is line 1), for app/api/imports.py to
validate with the same code as that endpoint and insert all or nothing.

The header is `socialAccountIds,content,scheduledAt,timezone,mediaUrls` (any order); lists are
separated by `|`; an empty scheduledAt makes drafts. UTF-8, with or without a BOM. A cell is
never interpreted: `=cmd|' /C calc'!A0` is stored as that text.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from app.errors import InvalidInput

HEADER = ("socialAccountIds", "content", "scheduledAt", "timezone", "mediaUrls")
LISTS = ("socialAccountIds", "mediaUrls")
SEPARATOR = "|"
# csv's own limit is 128 KiB a field; a post's content may be 65,536 characters of 4 bytes.
csv.field_size_limit(1024 * 1024)


@dataclass(frozen=True)
class Row:
    line: int    # where the row starts in the file; the header is line 1
    body: dict   # the POST /schedule-post body it stands for


def read_rows(data: bytes) -> list[Row]:
    """The rows of a CSV file; a wrong header or undecodable bytes are refused (422) whole."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not UTF-8: {exc.reason} at byte {exc.start}",
                           fields={"file": "not UTF-8"}) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput("the file is empty: its first line must be the header "
                               + ",".join(HEADER), fields={"file": "empty"})
        names = [name.strip() for name in header]
        if sorted(names) != sorted(HEADER):
            raise InvalidInput(f"line 1 must be the header {','.join(HEADER)} (in any order), "
                               f"not {','.join(names)[:200]}", fields={"line 1": "wrong header"})
        rows, line = [], reader.line_num + 1
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not cells:
                continue  # a blank line
            if len(cells) != len(names):
                rows.append(Row(start, {"_cells": (len(cells), len(names))}))
                continue
            rows.append(Row(start, _body(dict(zip(names, cells)))))
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num} is not CSV: {exc}",
                           fields={f"line {reader.line_num}": f"not CSV: {exc}"}) from None
    return rows


def _body(cells: dict[str, str]) -> dict:
    body: dict = {"content": cells["content"]}
    accounts = _list(cells["socialAccountIds"])
    body["socialAccountIds"] = accounts
    for name in ("scheduledAt", "timezone"):
        if cells[name].strip():
            body[name] = cells[name].strip()
    body["mediaUrls"] = _list(cells["mediaUrls"])
    return body


def _list(cell: str) -> list[str]:
    return [item.strip() for item in cell.split(SEPARATOR) if item.strip()]


def cell_count_problem(row: Row) -> str | None:
    """Why a row has the wrong number of cells, if it does."""
    if "_cells" not in row.body:
        return None
    given, wanted = row.body["_cells"]
    return f"has {given} cells; the header has {wanted}"

