"""Segment-compatible ``track`` and ``identify`` calls, mapped onto events and subscriber fields.

Pure functions, no database. A ``track`` call becomes behaviour events: ``userId`` is the
subscriber key, ``properties`` name the item (``item_key``, ``product_id``, ``sku``,
``content_id`` or ``id``; an ``Order Completed`` with a ``products`` list gives one event per
product), ``timestamp`` is when it happened and ``messageId`` the idempotency key. Event names
map onto interaction kinds by ``EVENT_KINDS`` (Segment's e-commerce and video spec names), or
may be a kind itself (``view``, ``read``, ``purchase``...). An ``identify`` call becomes a
subscriber upsert: ``traits.email``, ``traits.name`` (or first and last name),
``traits.timezone`` or ``context.timezone``, ``context.locale``; every other trait is merged
into the subscriber's attributes (traits named like a subscriber field, such as ``status`` or
``topics``, are not: what the subscriber chose is not changed by an identify call).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from newsletter.models import INTERACTION_KINDS
from newsletter.store.records import SUBSCRIBER_COLUMNS

EVENT_KINDS = {
    "product viewed": "view",
    "product list viewed": "view",
    "content viewed": "view",
    "article viewed": "view",
    "article read": "read",
    "article completed": "read",
    "video content completed": "read",
    "product clicked": "click",
    "product added": "cart",
    "checkout started": "cart",
    "order completed": "purchase",
    "product added to wishlist": "like",
    "product shared": "like",
    "product reviewed": "rating",
}
ITEM_PROPERTIES = ("item_key", "product_id", "sku", "content_id", "id")
KNOWN_TRAITS = {"email", "name", "firstName", "lastName", "first_name", "last_name", "timezone"}


class SegmentError(ValueError):
    """A call that cannot be mapped; the message names the field and the fix."""


def event_kind(name: Any) -> str:
    """The interaction kind of a Segment event name (case-insensitive), or SegmentError."""
    text = str(name or "").strip()
    lowered = text.lower()
    if lowered in INTERACTION_KINDS:
        return lowered
    if lowered in EVENT_KINDS:
        return EVENT_KINDS[lowered]
    raise SegmentError(
        f"event {text!r} has no interaction kind: send one of {', '.join(INTERACTION_KINDS)} "
        "or a Segment e-commerce name such as 'Product Viewed' or 'Order Completed'"
    )


def _item_key(properties: Mapping[str, Any]) -> str | None:
    for name in ITEM_PROPERTIES:
        value = properties.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _value(kind: str, properties: Mapping[str, Any]) -> Any:
    if kind == "rating":
        return properties.get("rating", properties.get("value"))
    return properties.get("quantity", properties.get("value"))


def track_events(call: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The behaviour events (EventIn fields) of one ``track`` call, or SegmentError."""
    user = call.get("userId")
    if user is None or not str(user).strip():
        raise SegmentError("userId is missing: anonymous calls cannot be stored, send userId")
    kind = event_kind(call.get("event"))
    properties = call.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise SegmentError("properties must be an object")
    products = properties.get("products")
    lines = products if isinstance(products, list) and products else [properties]
    message_id = call.get("messageId")
    events = []
    for n, line in enumerate(lines):
        item = _item_key(line) if isinstance(line, Mapping) else None
        if item is None:
            raise SegmentError(f"properties name no item: give one of {', '.join(ITEM_PROPERTIES)}")
        key = None if message_id is None else f"{message_id}" + (f"#{n}" if len(lines) > 1 else "")
        events.append(
            {
                "subscriber_key": str(user).strip(),
                "item_key": item,
                "kind": kind,
                "occurred_at": call.get("timestamp") or call.get("sentAt"),
                "value": _value(kind, line),
                "idempotency_key": key,
            }
        )
    return events


def identify_fields(call: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(subscriber key, SubscriberIn fields with merged attributes) of an ``identify`` call."""
    user = call.get("userId")
    if user is None or not str(user).strip():
        raise SegmentError("userId is missing: send the subscriber key as userId")
    traits = call.get("traits") or {}
    context = call.get("context") or {}
    if not isinstance(traits, Mapping) or not isinstance(context, Mapping):
        raise SegmentError("traits and context must be objects")
    fields: dict[str, Any] = {}
    if traits.get("email"):
        fields["email"] = traits["email"]
    first = traits.get("firstName") or traits.get("first_name")
    last = traits.get("lastName") or traits.get("last_name")
    name = traits.get("name") or " ".join(str(p) for p in (first, last) if p)
    if name:
        fields["name"] = name
    timezone = traits.get("timezone") or context.get("timezone")
    if timezone:
        fields["timezone"] = timezone
    if context.get("locale"):
        fields["locale"] = context["locale"]
    skip = KNOWN_TRAITS | SUBSCRIBER_COLUMNS
    extra = {k: v for k, v in traits.items() if k not in skip and v is not None}
    if extra:
        fields["attributes"] = extra
    return str(user).strip(), fields
