"""The last shard to finish settles the run (the Celery finalisation by database count);
a shard that finds work left never touches the status."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from sqlalchemy import Engine

from newsletter import pipeline
from newsletter.config import Settings
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.deliver.shards import start_pass
from newsletter.deliver.status import settle_if_done
from newsletter.store.runs import run_row
from newsletter.tasks import DeliverShard, Worker, database_url


def test_only_the_last_shard_settles_the_run(engine: Engine, tmp_path: Path) -> None:
    seed_dispatch_world(engine, subscribers=30)
    settings = Settings(secret_key="settle-test-secret-0123456789abcdef")
    plan = pipeline.create_run(
        engine, campaign="weekly", now=DISPATCH_NOW, settings=settings, shard_count=2
    )
    assert settle_if_done(engine, run_id=plan.run_id, now=DISPATCH_NOW) is None  # unplanned
    pipeline.plan_run(engine, run_id=plan.run_id, now=DISPATCH_NOW)
    start_pass(
        engine, run_id=plan.run_id, now=DISPATCH_NOW, policy=DeliveryPolicy(honour_send_time=False)
    )
    worker = Worker(engine=engine, settings=settings)
    url, outbox = database_url(engine), f"outbox:{tmp_path / 'out'}"
    DeliverShard(url, plan.run_id, 0, outbox).run(worker)
    # Two days on every planned send time has come (a send hour is the first at or after the
    # run's scheduled time), so shard 1's messages are due: only shard 1 may settle the run.
    later = DISPATCH_NOW + timedelta(days=2)
    assert settle_if_done(engine, run_id=plan.run_id, now=later) is None
    assert run_row(engine, run_id=plan.run_id).status == "delivering"  # type: ignore[union-attr]
    DeliverShard(url, plan.run_id, 1, outbox).run(worker)
    assert settle_if_done(engine, run_id=plan.run_id, now=later) == "delivered"
    assert run_row(engine, run_id=plan.run_id).status == "delivered"  # type: ignore[union-attr]
