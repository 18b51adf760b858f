"""Typed `Table` objects for the models, so that Core queries need no `# type: ignore`.

SQLModel declares `Model.__table__` without a type; `tables.message_table` is the same
object typed as a SQLAlchemy `Table` (`.c`, `insert()`, `update()`, joins). `table_of` does
the same for code that loops over models.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlmodel import SQLModel

from newsletter.models import (
    AdminSession,
    AdminUser,
    ApiKey,
    Assignment,
    Campaign,
    Event,
    Interaction,
    Item,
    ItemTopic,
    LoginAttempt,
    Message,
    Run,
    RunArtifact,
    RunArtifactPart,
    Segment,
    Slot,
    Subscriber,
    Suppression,
    SyncState,
    Template,
    TemplatePublication,
    TemplateVersion,
    TriggerState,
)


def table_of(model: type[SQLModel]) -> Table:
    """The table of a `table=True` model (`TypeError` for a model without one)."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


subscriber_table = table_of(Subscriber)
item_table = table_of(Item)
item_topic_table = table_of(ItemTopic)
interaction_table = table_of(Interaction)
segment_table = table_of(Segment)
template_table = table_of(Template)
template_version_table = table_of(TemplateVersion)
campaign_table = table_of(Campaign)
run_table = table_of(Run)
run_artifact_table = table_of(RunArtifact)
run_artifact_part_table = table_of(RunArtifactPart)
message_table = table_of(Message)
slot_table = table_of(Slot)
event_table = table_of(Event)
trigger_state_table = table_of(TriggerState)
assignment_table = table_of(Assignment)
suppression_table = table_of(Suppression)
sync_state_table = table_of(SyncState)
template_publication_table = table_of(TemplatePublication)
admin_user_table = table_of(AdminUser)
admin_session_table = table_of(AdminSession)
login_attempt_table = table_of(LoginAttempt)
api_key_table = table_of(ApiKey)

# The human-events filter: machine opens and scanner clicks are kept, flagged, and excluded
# from learning and reports (DESIGN.md section 5) by this one condition.
human_event = event_table.c.is_machine.is_(False)
