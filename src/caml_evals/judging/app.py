"""The rating web app: one page per answer, a yes/no per criterion, saved on every click.

Each rater has a personal link `/r/<token>`; anything without a valid token gets 403 and no data
(not even how many items there are): the token is checked before anything else in a request is
looked at, and every unknown path answers 403 too (404 only behind a valid token). Pages work as
plain HTML forms; a few lines of JavaScript additionally save each choice the moment it is made
(`POST /r/<token>/api/rate`, `POST /r/<token>/api/clear` when a choice is taken back), so closing
the tab half-way through a page loses nothing.

Request bodies are capped at `MAX_BODY_BYTES` (413 beyond it, checked after the token) and a
comment at `MAX_COMMENT_CHARS` (422), so no request can fill the database. Tokens are in URL
paths, so the access log (`--log-level info`) shows `/r/<token>` instead of them
(`redacted_log_config`).

Run with `caml-evals judge serve` (binds 127.0.0.1 unless told otherwise).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, ValidationError

from .schema import MAX_COMMENT_CHARS, HumanRating
from .store import RatingStore, StoreError

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
FORBIDDEN = "This page needs a valid personal rating link."
NOT_FOUND = "No such page."
# The app asks yes/no for every item; nothing else may be stored through it (finer scales come
# in through `judge import`).
CHOICES = {"yes": 1.0, "no": 0.0}
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# The largest request body read (a page's form or one API call): a page of many criteria with
# full-length, percent-encoded comments fits; a body that could fill the disk does not.
MAX_BODY_BYTES = 2 * 1024 * 1024
_TOKEN_IN_PATH = re.compile(r"(/r/)[^/?#\s\"]+")


def redact_tokens(text: str) -> str:
    """`text` with every rater token of a `/r/<token>` path replaced by `<token>`."""
    return _TOKEN_IN_PATH.sub(r"\1<token>", text)


class RedactTokens(logging.Filter):
    """A logging filter: rater tokens never reach a log line (uvicorn's access log prints the
    request path, and the path holds the token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact_tokens(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        return True


def redacted_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with `RedactTokens` on every handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": f"{__name__}.RedactTokens"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config


class RateRequest(BaseModel):
    item_id: str
    value: str | None = None  # "yes" | "no" | None (only with unsure)
    unsure: bool = False
    comment: str = Field("", max_length=MAX_COMMENT_CHARS)


class ClearRequest(BaseModel):
    item_id: str


def _forbidden() -> HTTPException:
    return HTTPException(status_code=403, detail=FORBIDDEN)


def _choice(value: str | None) -> float | None:
    """The stored value of a yes/no choice; ValueError for anything else."""
    if value is None or value == "":
        return None
    if value not in CHOICES:
        raise ValueError(f"rating {value!r} is not yes/no (allowed: {', '.join(CHOICES)})")
    return CHOICES[value]


async def _body(request: Request) -> bytes:
    """The request body, or 413 once it passes MAX_BODY_BYTES (declared or streamed).
    Called only after the token was checked."""
    declared = request.headers.get("content-length")
    too_large = HTTPException(
        status_code=413, detail=f"The request is larger than {MAX_BODY_BYTES} bytes."
    )
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as ex:
        raise ValueError(f"the request body is not JSON ({ex})") from None


def _error_text(ex: Exception) -> str:
    if isinstance(ex, ValidationError):
        return "; ".join(e["msg"].removeprefix("Value error, ") for e in ex.errors())
    return str(ex)


def create_app(db_path: str | Path) -> FastAPI:
    store = RatingStore(db_path)
    app = FastAPI(
        title="caml-evals judge calibration", docs_url=None, redoc_url=None, openapi_url=None
    )

    units_cache: dict[tuple[str, int], list] = {}

    def units_of(rater: str) -> list:
        """The rater's pages; cached (items only change when a rating set is loaded)."""
        key = (rater, store.item_count())
        if key not in units_cache:
            units_cache[key] = store.units_for(rater)
        return units_cache[key]

    def rater_of(token: str) -> str:
        rater = store.rater_for_token(token)
        if rater is None:
            raise _forbidden()
        return rater

    def progress(rater: str, units: list) -> dict:
        done = store.ratings_by_item(rater)
        total = sum(len(u) for u in units)
        answered = sum(1 for u in units for i in u if i.item_id in done)
        return {"answered": answered, "total": total}

    def page(units: list, pos: str) -> int:
        """The page number of `pos` (a path segment), 404 when there is no such page. Called
        only after the token was checked, so a bad token never learns what pages exist."""
        if not (pos.isascii() and pos.isdigit()) or not 0 <= int(pos) < len(units):
            raise HTTPException(status_code=404, detail=NOT_FOUND)
        return int(pos)

    def first_open(units: list, done: dict) -> int | None:
        for pos, unit in enumerate(units):
            if any(i.item_id not in done for i in unit):
                return pos
        return None

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return HTMLResponse(
            TEMPLATES.get_template("error.html").render(status=exc.status_code, detail=exc.detail),
            status_code=exc.status_code,
        )

    @app.get("/", response_class=HTMLResponse)
    def root():
        raise _forbidden()

    @app.get("/r/{token}", response_class=HTMLResponse)
    def start(token: str):
        rater = rater_of(token)
        units = units_of(rater)
        pos = first_open(units, store.ratings_by_item(rater))
        if pos is None:
            return RedirectResponse(f"/r/{token}/done", status_code=303)
        return RedirectResponse(f"/r/{token}/u/{pos}", status_code=303)

    @app.get("/r/{token}/u/{pos}", response_class=HTMLResponse)
    def unit_page(request: Request, token: str, pos: str):
        rater = rater_of(token)
        units = units_of(rater)
        n = page(units, pos)
        unit = units[n]
        done = store.ratings_by_item(rater)
        return TEMPLATES.TemplateResponse(
            request,
            "unit.html",
            {
                "token": token,
                "rater": rater,
                "pos": n,
                "n_units": len(units),
                "unit": unit,
                "question": unit[0].question,
                "answer": unit[0].answer,
                "ratings": {i.item_id: done.get(i.item_id) for i in unit},
                "progress": progress(rater, units),
            },
        )

    @app.post("/r/{token}/u/{pos}")
    async def unit_submit(request: Request, token: str, pos: str):
        rater = rater_of(token)
        units = units_of(rater)
        n = page(units, pos)
        try:
            form = parse_qs((await _body(request)).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise HTTPException(status_code=400, detail="The form is not UTF-8.") from None
        long = [
            item.criterion
            for item in units[n]
            if len((form.get(f"comment::{item.item_id}") or [""])[0]) > MAX_COMMENT_CHARS
        ]
        if long:  # checked before anything is saved: the page is stored whole or not at all
            raise HTTPException(
                status_code=422,
                detail=f"A comment may have at most {MAX_COMMENT_CHARS} characters "
                f"({', '.join(long)}).",
            )
        errors = []
        for item in units[n]:
            raw = (form.get(f"value::{item.item_id}") or [None])[0] or None
            unsure = bool(form.get(f"unsure::{item.item_id}"))
            comment = (form.get(f"comment::{item.item_id}") or [""])[0]
            try:
                value = _choice(raw)
            except ValueError as ex:
                errors.append(f"{item.criterion}: {ex}")
                continue
            if value is None and not unsure:
                # nothing chosen (or an 'unsure' mark taken back): no rating for this item
                store.delete(item.item_id, rater)
                if comment.strip():
                    errors.append(f"{item.criterion}: choose yes or no, or tick 'unsure'")
                continue
            store.save(
                HumanRating(
                    item_id=item.item_id, rater=rater, value=value, unsure=unsure, comment=comment
                )
            )
        if errors:
            raise HTTPException(status_code=400, detail="; ".join(errors))
        # Onward in order; after the last page, back to the first page with open items (if any).
        nxt = n + 1 if n + 1 < len(units) else first_open(units, store.ratings_by_item(rater))
        target = f"/r/{token}/done" if nxt is None else f"/r/{token}/u/{nxt}"
        return RedirectResponse(target, status_code=303)

    def item_of(rater: str, item_id: str) -> bool:
        return any(i.item_id == item_id for u in units_of(rater) for i in u)

    @app.post("/r/{token}/api/rate")
    async def api_rate(token: str, request: Request):
        rater = rater_of(token)
        try:
            body = RateRequest.model_validate(_json_body(await _body(request)))
            rating = HumanRating(
                item_id=body.item_id,
                rater=rater,
                value=_choice(body.value),
                unsure=body.unsure,
                comment=body.comment,
            )
        except (ValidationError, ValueError) as ex:
            return JSONResponse({"saved": False, "error": _error_text(ex)}, status_code=422)
        try:
            store.save(rating)
        except StoreError as ex:
            return JSONResponse({"saved": False, "error": str(ex)}, status_code=404)
        return {"saved": True, "progress": progress(rater, units_of(rater))}

    @app.post("/r/{token}/api/clear")
    async def api_clear(token: str, request: Request):
        """Withdraw the rater's rating of an item (nothing chosen any more)."""
        rater = rater_of(token)
        try:
            body = ClearRequest.model_validate(_json_body(await _body(request)))
        except (ValidationError, ValueError) as ex:
            return JSONResponse({"cleared": False, "error": _error_text(ex)}, status_code=422)
        if not item_of(rater, body.item_id):
            return JSONResponse(
                {"cleared": False, "error": f"unknown item id {body.item_id!r}"}, status_code=404
            )
        deleted = store.delete(body.item_id, rater)
        return {"cleared": deleted, "progress": progress(rater, units_of(rater))}

    @app.get("/r/{token}/done", response_class=HTMLResponse)
    def done(request: Request, token: str):
        rater = rater_of(token)
        units = units_of(rater)
        open_pos = first_open(units, store.ratings_by_item(rater))
        return TEMPLATES.TemplateResponse(
            request,
            "done.html",
            {
                "token": token,
                "rater": rater,
                "progress": progress(rater, units),
                "open_pos": open_pos,
            },
        )

    @app.api_route("/{path:path}", methods=ALL_METHODS)
    def unknown(path: str):
        """Anything else: 403 unless it lies behind a valid token (then 404)."""
        parts = path.split("/")
        if len(parts) >= 2 and parts[0] == "r" and parts[1]:
            rater_of(parts[1])
            raise HTTPException(status_code=404, detail=NOT_FOUND)
        raise _forbidden()

    return app
