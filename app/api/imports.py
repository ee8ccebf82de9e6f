"""POST /imports: a CSV of posts, every row validated by the code of POST /schedule-post
(SchedulePostIn, posts.new_post's reading of it, posts.plan_posts' checks), then all inserted in
one transaction with multi-row INSERTs, or none of them and a 422 naming each bad line."""
from __future__ import annotations

from datetime import datetime
from typing import cast

from flask import current_app, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from app.api.body import HttpError, check_strings, read_body, read_limited, too_large
from app.api.posts import new_post
from app.api.schemas import ImportOut, SchedulePostIn
from app.api.spec import Api, _validated
from app.errors import Conflict, InvalidInput, NotFound
from app.services import imports, posts
from app.timeutil import utcnow

api = Api("imports", "posts")
LIMIT_SETTING = "SCHEDULER_IMPORT_MAX_BYTES"
MAX_LISTED = 20  # bad lines spelled out in the message; `fields` has every one
# JSON Schema cannot say which rows are valid (an account of this company, a future time):
# the document spells out the header only, which alone is a valid (empty) import; each further
# line is one POST /schedule-post body, checked as that endpoint checks it.
CSV = {"type": "string", "pattern": "^\ufeff?" + ",".join(imports.HEADER) + "(?:\r?\n)?$",
       "description": "UTF-8 CSV (a BOM is allowed): the header "
                      f"`{','.join(imports.HEADER)}`, then a line per post (README, Bulk "
                      "import): account ids and media URLs separated by `|`; an empty "
                      "scheduledAt saves drafts. A bad line makes the whole file 422, naming "
                      "`line N.field` for each."}
UPLOAD = {
    "text/csv": {"schema": CSV},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": CSV}}},
}


@api.route("POST", "/imports", summary="Schedule (or save as drafts) the posts of a CSV file, "
           "all or none", response=ImportOut, status=201, upload=UPLOAD,
           upload_limit=LIMIT_SETTING, one_session=True)
def import_posts(company_id: str, db: Session):
    settings = current_app.extensions["scheduler"]["settings"]
    data = uploaded_csv(settings.import_max_bytes)
    result = import_csv(db, company_id, data, utcnow(), settings.max_attempts)
    db.commit()
    return result


def uploaded_csv(limit: int) -> bytes:
    """The CSV's bytes from a text/csv body or the multipart field `file`, refused (413) as
    soon as more than `limit` bytes have come."""
    request.max_content_length = limit  # werkzeug's own reading stops there too
    try:
        if request.mimetype == "text/csv":
            return read_body(limit, LIMIT_SETTING)
        if request.mimetype == "multipart/form-data":
            if request.content_length is not None and request.content_length > limit:
                raise too_large(limit, LIMIT_SETTING)
            upload = request.files.get("file")
            if upload is not None:
                return read_limited(upload.stream, limit, LIMIT_SETTING)
            if "file" in request.form:  # a part sent without a file name is a text field
                return request.form["file"].encode("utf-8")
            raise InvalidInput("send the CSV as the multipart field `file`",
                               fields={"file": "required"})
    except RequestEntityTooLarge:
        raise too_large(limit, LIMIT_SETTING) from None
    raise HttpError(415, "unsupported_media_type", "send the CSV as the body with "
                    "`Content-Type: text/csv`, or as the multipart/form-data field `file`")


def import_csv(db: Session, company_id: str, data: bytes, now: datetime,
               max_attempts: int) -> ImportOut:
    """Every row checked as POST /schedule-post checks a body, then all inserted in `db`'s
    transaction (the caller commits), or InvalidInput naming each bad line and field."""
    problems: dict[str, str] = {}
    planned: list[posts.PlannedPost] = []
    accounts: dict = {}  # read once for the whole file
    rows = imports.read_rows(data)
    for row in rows:
        wrong = imports.cell_count_problem(row)
        if wrong:
            problems[f"line {row.line}"] = wrong
            continue
        try:
            check_strings(row.body)
            body = cast(SchedulePostIn, _validated(SchedulePostIn, row.body))
            request = posts.with_instant(db, company_id, new_post(body, now))
            planned += posts.plan_posts(db, company_id, request, now, max_attempts,
                                        known_accounts=accounts)
        except InvalidInput as exc:
            problems.update({f"line {row.line}.{field}": why
                             for field, why in (exc.fields or {"body": str(exc)}).items()})
        except (NotFound, Conflict) as exc:  # an account unknown, or to be reconnected
            problems[f"line {row.line}.socialAccountIds"] = str(exc)
    if problems:
        listed = "; ".join(f"{k}: {v}" for k, v in list(problems.items())[:MAX_LISTED])
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise InvalidInput(f"nothing was imported: {len(problems)} problem(s) in the file: "
                           f"{listed}{more}", fields=problems)
    posts.insert_planned(db, planned)
    drafts = sum(p.schedule is None for p in planned)
    return ImportOut(rows=len(rows), posts=len(planned) - drafts, drafts=drafts)
