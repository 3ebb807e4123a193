"""The rating web app: one page per answer, a yes/no per dimension, saved on every click.

Each rater has a personal link `/r/<token>`; anything without a valid token gets 403 and no data
(not even how many items there are). Pages work as plain HTML forms; a few lines of JavaScript
additionally save each choice the moment it is made (`POST /r/<token>/api/rate`), so closing the
tab half-way through a page loses nothing.

Run with `caml-evals judge serve` (binds 127.0.0.1 unless told otherwise).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from .schema import HumanRating
from .store import RatingStore, StoreError

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
FORBIDDEN = "This page needs a valid personal rating link."


class RateRequest(BaseModel):
    item_id: str
    value: str | None = None  # "yes" | "no" | None
    unsure: bool = False
    comment: str = ""


def _forbidden() -> HTTPException:
    return HTTPException(status_code=403, detail=FORBIDDEN)


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
    def unit_page(request: Request, token: str, pos: int):
        rater = rater_of(token)
        units = units_of(rater)
        if not 0 <= pos < len(units):
            raise HTTPException(status_code=404, detail="No such page.")
        unit = units[pos]
        done = store.ratings_by_item(rater)
        return TEMPLATES.TemplateResponse(
            request,
            "unit.html",
            {
                "token": token,
                "rater": rater,
                "pos": pos,
                "n_units": len(units),
                "unit": unit,
                "question": unit[0].question,
                "answer": unit[0].answer,
                "ratings": {i.item_id: done.get(i.item_id) for i in unit},
                "progress": progress(rater, units),
            },
        )

    @app.post("/r/{token}/u/{pos}")
    async def unit_submit(request: Request, token: str, pos: int):
        rater = rater_of(token)
        units = units_of(rater)
        if not 0 <= pos < len(units):
            raise HTTPException(status_code=404, detail="No such page.")
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
        errors = []
        for item in units[pos]:
            value = (form.get(f"value::{item.item_id}") or [None])[0] or None
            unsure = bool(form.get(f"unsure::{item.item_id}"))
            comment = (form.get(f"comment::{item.item_id}") or [""])[0]
            if value is None and not unsure:
                if comment.strip():
                    errors.append(f"{item.dimension}: choose yes or no, or tick 'unsure'")
                continue
            store.save(
                HumanRating(
                    item_id=item.item_id, rater=rater, value=value, unsure=unsure, comment=comment
                )
            )
        if errors:
            raise HTTPException(status_code=400, detail="; ".join(errors))
        # Onward in order; after the last page, back to the first page with open items (if any).
        nxt = pos + 1 if pos + 1 < len(units) else first_open(units, store.ratings_by_item(rater))
        target = f"/r/{token}/done" if nxt is None else f"/r/{token}/u/{nxt}"
        return RedirectResponse(target, status_code=303)

    @app.post("/r/{token}/api/rate")
    async def api_rate(token: str, request: Request):
        rater = rater_of(token)
        try:
            body = RateRequest.model_validate(await request.json())
            rating = HumanRating(
                item_id=body.item_id,
                rater=rater,
                value=body.value,
                unsure=body.unsure,
                comment=body.comment,
            )
        except (ValidationError, ValueError) as ex:
            return JSONResponse({"saved": False, "error": str(ex)}, status_code=422)
        try:
            store.save(rating)
        except StoreError as ex:
            return JSONResponse({"saved": False, "error": str(ex)}, status_code=404)
        return {"saved": True, "progress": progress(rater, units_of(rater))}

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

    return app
