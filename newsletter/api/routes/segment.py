"""Segment-compatible calls: ``POST /api/segment/track``, ``/identify`` and ``/batch``.

The mapping is ``newsletter.track.segment``; the answers are those of the events API (a
``BatchResult`` with one result per call for ``track`` and ``batch``). Same keys, same scope.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from newsletter.api.auth import ApiState, api_state, events_key
from newsletter.api.deps import Tracking, tracking
from newsletter.api.routes.events import BATCH_RESPONSES, ERRORS, batch_response, validate_rows
from newsletter.api.schemas import MAX_BATCH, BatchResult, SubscriberIn, Upserted
from newsletter.store.api_events import RowOutcome
from newsletter.store.records import RowError
from newsletter.track import ingest
from newsletter.track.segment import SegmentError, identify_fields, track_events

router = APIRouter(prefix="/api/segment", tags=["segment"])


class SegmentCall(BaseModel):
    """A Segment ``track`` or ``identify`` call (other fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    type: str | None = None
    userId: str = Field(min_length=1, max_length=200, description="the subscriber key")
    event: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: str | None = None
    messageId: str | None = None


class SegmentBatch(BaseModel):
    """A Segment ``batch`` call: up to 1,000 track and identify calls."""

    batch: list[SegmentCall] = Field(max_length=MAX_BATCH)


def _track(calls: list[tuple[int, dict[str, Any]]], t: Tracking, api: ApiState) -> list[RowOutcome]:
    """Store the events of ``track`` calls; one outcome per call (its worst row's)."""
    rows: list[dict[str, Any]] = []
    owner: list[int] = []
    outcomes: list[RowOutcome] = []
    for index, call in calls:
        try:
            events = track_events(call)
        except SegmentError as exc:
            outcomes.append(RowOutcome(index, "rejected", str(exc)))
            continue
        rows += events
        owner += [index] * len(events)
    good, bad = validate_rows(rows)
    result = ingest.ingest_events(
        t.engine,
        rows=good,
        unknown=t.settings.api_unknown_keys,
        now=t.now(),
        on_stored=api.on_events_stored,
    )
    per_call: dict[int, RowOutcome] = {}
    rank = {"stored": 0, "duplicate": 1, "rejected": 2}
    for outcome in bad + result.outcomes:
        index = owner[outcome.index]
        seen = per_call.get(index)
        if seen is None or rank[outcome.status] > rank[seen.status]:
            per_call[index] = RowOutcome(index, outcome.status, outcome.reason)
    return outcomes + list(per_call.values())


def _identify(call: dict[str, Any], t: Tracking) -> tuple[str, Any]:
    key, fields = identify_fields(call)
    body = SubscriberIn.model_validate(fields)
    return key, ingest.upsert_subscriber(
        t.engine,
        key=key,
        fields=body.fields(),
        default_timezone=t.settings.default_timezone,
        now=t.now(),
        merge_attributes=True,
    )


@router.post("/track", response_model=BatchResult, responses=BATCH_RESPONSES)
def track(
    call: SegmentCall,
    _key: object = Depends(events_key),
    t: Tracking = Depends(tracking),
    api: ApiState = Depends(api_state),
) -> JSONResponse:
    """A Segment ``track`` call stored as behaviour events."""
    return batch_response(_track([(0, call.model_dump())], t, api))


@router.post(
    "/identify",
    response_model=Upserted,
    responses={201: {"model": Upserted, "description": "created"}, **ERRORS},
)
def identify(
    call: SegmentCall, _key: object = Depends(events_key), t: Tracking = Depends(tracking)
) -> JSONResponse:
    """A Segment ``identify`` call upserting the subscriber (traits merged into attributes)."""
    try:
        key, result = _identify(call.model_dump(), t)
    except (SegmentError, RowError, ValueError) as exc:
        raise HTTPException(422, f"identify: {str(exc).splitlines()[0]}") from exc
    body = Upserted(key=key, created=result.created).model_dump()
    return JSONResponse(body, status_code=201 if result.created else 200)


@router.post("/batch", response_model=BatchResult, responses=BATCH_RESPONSES)
def batch(
    body: SegmentBatch,
    _key: object = Depends(events_key),
    t: Tracking = Depends(tracking),
    api: ApiState = Depends(api_state),
) -> JSONResponse:
    """A Segment ``batch``: one result per call, in order."""
    calls = [(i, c.model_dump()) for i, c in enumerate(body.batch)]
    outcomes: list[RowOutcome] = []
    tracks = []
    for index, call in calls:
        kind = (call.get("type") or "").lower()
        if kind == "track":
            tracks.append((index, call))
        elif kind == "identify":
            try:
                _identify(call, t)
                outcomes.append(RowOutcome(index, "stored"))
            except (SegmentError, RowError, ValueError) as exc:
                outcomes.append(RowOutcome(index, "rejected", str(exc).splitlines()[0]))
        else:
            outcomes.append(RowOutcome(index, "rejected", f"type {kind!r}: use track or identify"))
    return batch_response(outcomes + _track(tracks, t, api))
