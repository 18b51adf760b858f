"""The events API: behaviour events in batches, subscriber and item upserts, erasure.

Every route needs ``Authorization: Bearer <key>`` (``newsletter apikey create``); erasure needs
an ``admin`` key. ``POST /api/events`` answers 200 when every row was stored or was a
duplicate, 207 (Multi-Status) when at least one row was rejected; both carry one result per
row. The work is done by ``newsletter.track.ingest``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue

from newsletter.api.auth import ApiState, admin_key, api_state, events_key
from newsletter.api.deps import Tracking, tracking
from newsletter.api.schemas import (
    MAX_BATCH,
    BatchResult,
    Erased,
    EventBatch,
    EventIn,
    ItemIn,
    Problem,
    RowResult,
    SubscriberIn,
    Upserted,
)
from newsletter.store.api_events import RowOutcome
from newsletter.store.records import RowError
from newsletter.track import ingest

router = APIRouter(prefix="/api", tags=["events"])
KeyPath = Path(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the body is not JSON"},
    422: {"model": Problem, "description": "the request is invalid (the detail names the field)"},
    401: {"model": Problem, "description": "no key, or an unknown or revoked one"},
    403: {"model": Problem, "description": "the key lacks the scope"},
    429: {"model": Problem, "description": "over the key's rate limit (see Retry-After)"},
}


class RawBatch(BaseModel):
    """The batch as received: rows are validated one by one, so one bad row fails alone."""

    events: list[Any] = Field(max_length=MAX_BATCH)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: Any, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Documented as ``EventBatch``: what a client should send."""
        return handler(EventBatch.__pydantic_core_schema__)


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "row"
    return f"{where}: {first['msg']}"


def validate_rows(rows: Sequence[Any]) -> tuple[list[tuple[int, dict[str, Any]]], list[RowOutcome]]:
    """Each row checked against ``EventIn``: (good rows by index, rejections with the reason)."""
    good, bad = [], []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            bad.append(RowOutcome(index, "rejected", "row: must be a JSON object"))
            continue
        try:
            good.append((index, EventIn.model_validate(row).model_dump()))
        except ValidationError as exc:
            bad.append(RowOutcome(index, "rejected", _problem(exc)))
    return good, bad


def batch_response(outcomes: list[RowOutcome]) -> JSONResponse:
    """200 when nothing was rejected, else 207, with one result per row."""
    outcomes = sorted(outcomes, key=lambda o: o.index)
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("stored", "duplicate")}
    rejected = len(outcomes) - counts["stored"] - counts["duplicate"]
    body = BatchResult(
        stored=counts["stored"],
        duplicates=counts["duplicate"],
        rejected=rejected,
        results=[RowResult(index=o.index, status=o.status, reason=o.reason) for o in outcomes],
    )
    return JSONResponse(body.model_dump(), status_code=207 if rejected else 200)


def store_rows(rows: Sequence[Any], t: Tracking, api: ApiState) -> JSONResponse:
    """Validate, store and answer a list of event rows (shared with the Segment routes)."""
    good, bad = validate_rows(rows)
    result = ingest.ingest_events(
        t.engine,
        rows=good,
        unknown=t.settings.api_unknown_keys,
        now=t.now(),
        on_stored=api.on_events_stored,
    )
    return batch_response(bad + result.outcomes)


BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BatchResult, "description": "every row stored or a duplicate"},
    207: {"model": BatchResult, "description": "some rows rejected (see each row's reason)"},
    **ERRORS,
}


@router.post("/events", response_model=BatchResult, responses=BATCH_RESPONSES)
def post_events(
    batch: RawBatch,
    _key: object = Depends(events_key),
    t: Tracking = Depends(tracking),
    api: ApiState = Depends(api_state),
) -> JSONResponse:
    """Store up to 1,000 behaviour events; a row's idempotency key is honoured once."""
    return store_rows(batch.events, t, api)


UPSERT_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"model": Upserted, "description": "created"},
    **ERRORS,
}


def _upserted(key: str, result: Any) -> JSONResponse:
    body = Upserted(key=key, created=result.created).model_dump()
    return JSONResponse(body, status_code=201 if result.created else 200)


@router.put("/subscribers/{key}", response_model=Upserted, responses=UPSERT_RESPONSES)
def put_subscriber(
    body: SubscriberIn,
    key: str = KeyPath,
    _key: object = Depends(events_key),
    t: Tracking = Depends(tracking),
) -> JSONResponse:
    """Create or update a subscriber; fields the body omits keep their stored values."""
    try:
        result = ingest.upsert_subscriber(
            t.engine,
            key=key,
            fields=body.fields(),
            default_timezone=t.settings.default_timezone,
            now=t.now(),
        )
    except RowError as exc:
        raise HTTPException(422, f"subscriber {key!r}: {exc}") from exc
    return _upserted(key, result)


@router.put("/items/{key}", response_model=Upserted, responses=UPSERT_RESPONSES)
def put_item(
    body: ItemIn,
    key: str = KeyPath,
    _key: object = Depends(events_key),
    t: Tracking = Depends(tracking),
) -> JSONResponse:
    """Create or update an item; fields the body omits keep their stored values."""
    try:
        result = ingest.upsert_item(t.engine, key=key, fields=body.fields(), now=t.now())
    except RowError as exc:
        raise HTTPException(422, f"item {key!r}: {exc}") from exc
    return _upserted(key, result)


@router.delete(
    "/subscribers/{key}",
    response_model=Erased,
    responses={404: {"model": Problem, "description": "no such subscriber"}, **ERRORS},
)
def delete_subscriber(
    key: str = KeyPath, _key: object = Depends(admin_key), t: Tracking = Depends(tracking)
) -> Erased:
    """Erase a subscriber's personal data (GDPR), keeping anonymous aggregates."""
    if not ingest.erase_subscriber(t.engine, key=key, now=t.now()):
        raise HTTPException(404, f"no subscriber with key {key!r}")
    return Erased(key=key)
