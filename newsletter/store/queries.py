"""Small read queries shared by the commands (counts and summaries)."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from newsletter.models import Interaction, Item, Subscriber
from newsletter.tables import table_of


def count_rows(engine: Engine) -> dict[str, int]:
    """Rows per core entity: subscribers, items, interactions."""
    counts: dict[str, int] = {}
    with engine.connect() as connection:
        for name, model in (
            ("subscribers", Subscriber),
            ("items", Item),
            ("interactions", Interaction),
        ):
            table = table_of(model)
            counts[name] = int(
                connection.execute(select(func.count()).select_from(table)).scalar_one()
            )
    return counts
