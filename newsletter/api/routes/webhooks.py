"""ESP webhooks: ``POST /api/webhooks/{ses|sendgrid|postmark|mailgun}``.

No API key: each provider proves itself with its own signature (``track.signatures``). A call
that fails the check is answered 401 and records nothing; a provider whose secret is not set
is 403; a verified body of the wrong shape is 400. The work is ``track.feedback``.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from newsletter.api.deps import Tracking, tracking
from newsletter.api.schemas import Problem
from newsletter.track import feedback
from newsletter.track.signatures import NotConfigured, SignatureError
from newsletter.track.webhooks import PayloadError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
MAX_BODY = 5 * 1024 * 1024


class WebhookResult(BaseModel):
    """Recipients by outcome: suppressed, recorded, duplicate, unknown (no such address)."""

    counts: dict[str, int]
    note: str | None = None


ANY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {}}},
    }
}


@router.post(
    "/{provider}",
    response_model=WebhookResult,
    openapi_extra=ANY_BODY,
    responses={
        400: {"model": Problem, "description": "a verified body of the wrong shape"},
        401: {"model": Problem, "description": "the signature does not verify"},
        403: {"model": Problem, "description": "the provider is not configured"},
        413: {"model": Problem, "description": "the body is over 5 MB"},
        422: {"model": Problem, "description": "an unknown provider"},
    },
)
async def webhook(
    provider: Literal["ses", "sendgrid", "postmark", "mailgun"],
    request: Request,
    t: Tracking = Depends(tracking),
) -> WebhookResult:
    """Record the bounces, complaints and deliveries an ESP reports."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "the webhook body is over 5 MB")
    fetch = getattr(request.app.state, "sns_fetch", None)
    try:
        outcome = feedback.handle_webhook(
            t.engine,
            provider,
            body,
            {k.lower(): v for k, v in request.headers.items()},
            settings=t.settings,
            now=t.now(),
            fetch=fetch,
        )
    except NotConfigured as exc:
        raise HTTPException(403, str(exc)) from exc
    except SignatureError as exc:
        log.warning("refused a %s webhook: %s", provider, exc)
        raise HTTPException(401, f"{provider} webhook refused: {exc}") from exc
    except PayloadError as exc:
        raise HTTPException(400, f"{provider} webhook: {exc}") from exc
    return WebhookResult(counts=outcome.counts, note=outcome.note)
