"""Schemathesis against /openapi.json: every API operation, with a test key, bounded examples.

No answer may be a 5xx, and every answer must match the documented status codes, content
types and response schemas; invalid requests must be refused. Documented exceptions:

- the event batches validate each row on their own and answer 207 with the row's reason, by
  design, so schema-violating *rows* are not refused whole there;
- an upsert can be schema-valid and still break a rule only the data can tell (a new key
  without an email, a timezone name that does not exist, an email another subscriber owns):
  those answer 422 with the reason, so "schema-valid requests are accepted" is not checked
  on the upsert routes;
- Starlette answers an unsupported method with the ``Allow`` header of the first route whose
  path matches (PUT for ``/api/subscribers/{key}``, which also has DELETE): a framework
  limitation, so the Allow-header check is off.
"""

from __future__ import annotations

import pytest
import schemathesis
from api_world import SENT_AT, Clock, build_world
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    negative_data_rejection,
    positive_data_acceptance,
)
from sqlalchemy import Engine

from newsletter.api.app import create_app
from newsletter.config import Settings
from newsletter.store.apikeys import create_key

KEYS: dict[str, str] = {}
ROW_VALIDATED = ("/api/events", "/api/segment/track", "/api/segment/batch")
DATA_RULES = ("/api/subscribers/{key}", "/api/items/{key}", "/api/segment/identify")


@pytest.fixture
def api_schema(sqlite_engine: Engine):
    """The live app's schema, with an admin key stored for the requests."""
    build_world(sqlite_engine)
    KEYS["admin"] = create_key(
        sqlite_engine, name="schemathesis", scope="admin", rate_limit=100_000, now=SENT_AT
    )[1]
    settings_ = Settings(secret_key="schemathesis-secret", api_unknown_keys="placeholder")
    app = create_app(settings=settings_, engine=sqlite_engine, clock=Clock(SENT_AT))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_its_documented_promises(case) -> None:
    excluded = [allow_header_conformance]
    if case.operation.path in ROW_VALIDATED:
        excluded.append(negative_data_rejection)
    if case.operation.path in DATA_RULES:
        excluded.append(positive_data_acceptance)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {KEYS['admin']}"}, excluded_checks=excluded
    )
