"""World parameters: the documented TOML files that describe a simulated publisher or shop.

A world file has the sections ``[world]``, ``[catalogue]``, ``[subscribers]``, ``[reading]``
(behaviour on the site), ``[email]`` (how people treat the newsletter), ``[machines]`` (Apple
Mail Privacy Protection, link scanners, dead addresses) and ``[experiment]`` (the campaign's
arms). Every key is documented in the shipped files (``newsletter/simulate/worlds/*.toml``);
a file given with ``--world FILE`` may set only some keys, the rest come from ``news.toml``.
Unknown keys and out-of-range values are refused with a message naming the key and the fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

WORLDS_DIR = Path(__file__).with_name("worlds")
DEFAULT_WORLD = "news"


class WorldFileError(ValueError):
    """A world file is missing, not TOML, or has a bad key; the message names it and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldInfo(_Strict):
    name: str
    description: str = ""
    kind: str = Field(default="news", pattern="^(news|shop|catalogue)$")
    url: str = "https://news.example.com"
    tracking_url: str = "https://links.news.example.com"
    sender: str = "The Weekly <digest@news.example.com>"


class Catalogue(_Strict):
    initial_items: int = Field(ge=1)
    items_per_week: int = Field(ge=0)
    factors: int = Field(ge=2, le=64)
    factor_concentration: float = Field(gt=0)
    topics: int = Field(ge=2, le=40)
    topic_reveal: float = Field(ge=0, le=1)
    extra_topic_share: float = Field(ge=0, le=1)
    text_reveal: float = Field(ge=0, le=1)
    quality_sigma: float = Field(ge=0)
    half_life_days: float = Field(gt=0)
    shelf_life_days: float = Field(gt=0)
    repeat_share: float = Field(default=0.0, ge=0, le=1)
    repeat_days: float = Field(default=30.0, gt=0)


class Subscribers(_Strict):
    count: int = Field(ge=1)
    new_per_week: float = Field(ge=0)
    taste_concentration: float = Field(gt=0)
    taste_sharpness: float = Field(gt=0)
    drift_per_week: float = Field(ge=0, le=1)
    declare_topics_share: float = Field(ge=0, le=1)
    activity_sigma: float = Field(ge=0)


class Reading(_Strict):
    history_weeks: int = Field(ge=0, le=52)
    visits_per_week: float = Field(ge=0)
    read_share: float = Field(ge=0, le=1)
    like_share: float = Field(ge=0, le=1)
    cart_share: float = Field(default=0.0, ge=0, le=1)
    purchase_share: float = Field(default=0.0, ge=0, le=1)
    homepage_boost: float = Field(ge=0)


class Email(_Strict):
    open_rate: float = Field(ge=0, le=1)
    images_blocked_share: float = Field(ge=0, le=1)
    click_base: float = Field(gt=0)
    max_click: float = Field(gt=0, le=1)
    position_decay: float = Field(gt=0, le=1)
    unsubscribe_base: float = Field(ge=0, le=1)
    fatigue_unsubscribe: float = Field(ge=0, le=1)
    irrelevant_below: float = Field(ge=0, le=1)
    fatigue_open_penalty: float = Field(ge=0, le=1)
    purchase_after_click: float = Field(default=0.0, ge=0, le=1)


class Machines(_Strict):
    apple_mpp_share: float = Field(ge=0, le=1)
    scanner_share: float = Field(ge=0, le=1)
    disguised_scanner_share: float = Field(ge=0, le=1)
    scanner_delay_seconds: tuple[float, float]
    dead_address_share: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _delays(self) -> Machines:
        low, high = self.scanner_delay_seconds
        if not 0 <= low <= high:
            raise ValueError("scanner_delay_seconds must be [low, high] with 0 <= low <= high")
        return self


class Experiment(_Strict):
    popular_share: float = Field(ge=0, le=1)
    control_share: float = Field(default=0.0, ge=0, le=1)
    n_items: int = Field(default=8, ge=1, le=20)


class WorldParams(_Strict):
    """Everything that describes one simulated world (see the module docstring)."""

    world: WorldInfo
    catalogue: Catalogue
    subscribers: Subscribers
    reading: Reading
    email: Email
    machines: Machines
    experiment: Experiment

    def with_overrides(self, **sections: dict[str, Any]) -> WorldParams:
        """A copy with some keys of some sections replaced (validated again)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return WorldParams.model_validate(data)


def shipped_worlds() -> dict[str, Path]:
    """The world files shipped with the package, by name."""
    return {p.stem: p for p in sorted(WORLDS_DIR.glob("*.toml"))}


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        known = ", ".join(shipped_worlds())
        raise WorldFileError(
            f"world file {path} does not exist; give a TOML file or a shipped world ({known})"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise WorldFileError(f"world file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WorldFileError(f"world file {path} is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_world(name_or_path: str | Path | None = None) -> WorldParams:
    """A shipped world by name (``news``, ``shop``, ``longtail``) or a TOML file over news."""
    worlds = shipped_worlds()
    key = str(name_or_path or DEFAULT_WORLD)
    path = worlds[key] if key in worlds else Path(key)
    raw = _read(path)
    if path != worlds[DEFAULT_WORLD]:
        raw = _merge(_read(worlds[DEFAULT_WORLD]), raw)
    try:
        return WorldParams.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise WorldFileError(f"world file {path}: {problems}") from exc
