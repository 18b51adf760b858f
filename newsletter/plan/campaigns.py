"""Campaign configuration (the JSON dict in ``Campaign.config``), validated by pydantic.

Every key has a global default; a campaign overrides only what it needs, e.g.::

    {"n_items": 6, "exploration_share": 0.2, "arms": {"popular": 0.2, "salt": "spring"},
     "cadence": {"max_per_7_days": 2, "quiet_hours": ["22:00", "07:00"]},
     "sections": [{"title": "Top picks", "kind": "top_picks", "count": 4},
                  {"title": "Trending", "kind": "trending", "count": 2}]}

Section kinds: ``top_picks``, ``because_you_read``, ``new_in_topics``, ``trending``.

A trigger campaign adds a ``trigger`` rule (``docs/triggers.md``), e.g.::

    {"trigger": {"kind": "abandoned_cart", "delay_hours": 1, "cooldown_hours": 24}}
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SectionKind = Literal["top_picks", "because_you_read", "new_in_topics", "trending"]


class CampaignConfigError(ValueError):
    """A campaign's config is invalid; the message names the campaign, the key and the fix."""


class Section(BaseModel):
    """One titled block of a digest, filled by one kind of candidate source."""

    model_config = ConfigDict(extra="forbid")
    title: str
    kind: SectionKind
    count: int = Field(ge=1, le=50)


class CadenceRules(BaseModel):
    """How often one subscriber may be emailed, and when not (times are the subscriber's own)."""

    model_config = ConfigDict(extra="forbid")
    max_per_day: int = Field(default=1, ge=0)
    max_per_7_days: int = Field(default=3, ge=0)
    min_gap_hours: float = Field(default=20.0, ge=0)
    quiet_hours: tuple[time, time] | None = (time(21, 0), time(8, 0))
    send_hour_local: int = Field(default=8, ge=0, le=23)


class ArmShares(BaseModel):
    """Experiment split: holdout shares (the rest is personalized) and an optional salt."""

    model_config = ConfigDict(extra="forbid")
    popular: float = Field(default=0.10, ge=0.0, le=1.0)
    control: float = Field(default=0.0, ge=0.0, le=1.0)
    salt: str | None = None

    @model_validator(mode="after")
    def _shares_fit(self) -> ArmShares:
        if self.popular + self.control > 1.0:
            raise ValueError("arms.popular + arms.control must be at most 1.0")
        return self


TriggerRuleKind = Literal["abandoned_cart", "topic_reads", "welcome"]


class TriggerRule(BaseModel):
    """When a trigger campaign fires (``newsletter.triggers.rules`` evaluates it).

    * ``abandoned_cart``: a ``cart`` interaction with no ``purchase`` of that item within
      ``delay_hours`` (the purchase cancels it);
    * ``topic_reads``: at least ``min_reads`` ``read`` interactions in one topic within
      ``window_hours``;
    * ``welcome``: a new subscriber gets one message per entry of ``steps_days`` after signup
      (a later step only while they are still active).
    """

    model_config = ConfigDict(extra="forbid")
    kind: TriggerRuleKind
    delay_hours: float = Field(default=1.0, ge=0, le=24 * 30)
    window_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    min_reads: int = Field(default=3, ge=1, le=100)
    steps_days: list[float] = Field(default_factory=lambda: [0.0, 3.0])
    cooldown_hours: float = Field(default=24.0, ge=0)
    label: str | None = None

    @field_validator("steps_days")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        if not value or any(d < 0 for d in value) or sorted(value) != value:
            raise ValueError("steps_days must be a non-empty, increasing list of days >= 0")
        return value


def default_sections() -> list[Section]:
    """The default digest layout: 8 slots in four sections."""
    return [
        Section(title="Top picks", kind="top_picks", count=3),
        Section(title="Because you read", kind="because_you_read", count=2),
        Section(title="New in your topics", kind="new_in_topics", count=2),
        Section(title="Trending", kind="trending", count=1),
    ]


class CampaignConfig(BaseModel):
    """Everything the planner needs to know about one campaign beyond its table columns."""

    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    n_items: int = Field(default=8, ge=1, le=50)
    sections: list[Section] = Field(default_factory=default_sections)
    exploration_share: float = Field(default=0.15, ge=0.0, le=0.5)
    exploration_section: str = "Something new"
    # Who fills the exploration slots: Thompson sampling (logged propensities, the default),
    # or the most popular unconsumed item (propensity 1), to A/B the slot policy itself or to
    # check an off-policy estimate (`newsletter report --ope`) against the policy really run.
    exploration_policy: Literal["thompson", "popular"] = "thompson"
    fresh_days: float = Field(default=14.0, gt=0)
    # How fast collaborative scores fade with item age: "auto" estimates the half-life of item
    # interest from the interactions (news: days; films: no decay), null turns it off.
    item_age_half_life_days: Annotated[float, Field(gt=0)] | Literal["auto"] | None = "auto"
    # How much item popularity the hybrid's ranking adds to the personal scores: "auto" picks
    # it per run on the campaign's last week of behaviour (newsletter.recommend.calibrate):
    # a shop whose bestsellers explain most purchases gets a large weight, news a small one.
    popularity_weight: Annotated[float, Field(ge=0)] | Literal["auto"] = "auto"
    explore_max_exposures: int = Field(default=200, ge=0)
    # "clicks": the hybrid's candidates re-ranked by a click model learned from the campaign's
    # own sent slots and human clicks of the last `click_log_days` (recommend/clickrank.py);
    # with too little feedback it is the hybrid.
    ranker: Literal["hybrid", "clicks", "collaborative", "popularity"] = "hybrid"
    click_log_days: float = Field(default=28.0, gt=0)
    arms: ArmShares = Field(default_factory=ArmShares)
    cadence: CadenceRules = Field(default_factory=CadenceRules)
    trigger: TriggerRule | None = None

    @field_validator("sections")
    @classmethod
    def _non_empty(cls, value: list[Section]) -> list[Section]:
        if not value:
            raise ValueError("a campaign needs at least one section")
        return value

    def section_quotas(self) -> list[int]:
        """Slots per section for n_items: counts scaled to add up to exactly n_items."""
        counts = [s.count for s in self.sections]
        total = sum(counts)
        quotas = [c * self.n_items // total for c in counts]
        order = sorted(range(len(counts)), key=lambda i: -(counts[i] * self.n_items % total))
        for i in order[: self.n_items - sum(quotas)]:
            quotas[i] += 1
        return quotas


def parse_campaign_config(
    raw: dict[str, Any], *, campaign: str, defaults: dict[str, Any] | None = None
) -> CampaignConfig:
    """Validate a campaign's config over the global defaults; errors name key and campaign."""
    merged = _deep_merge(defaults or {}, raw or {})
    try:
        return CampaignConfig.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}"
            for err in exc.errors()
        )
        message = f"campaign {campaign!r} has an invalid config: {problems}"
        raise CampaignConfigError(message) from exc


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge nested dicts: keys of `over` win, sub-dicts merge (lists are replaced)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


CRON_HELP = "minute hour day month weekday, e.g. '0 8 * * mon' for Mondays at 08:00"


def validate_schedule(expression: str) -> str:
    """A digest's schedule must be a 5-field cron expression (APScheduler's CronTrigger)."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise CampaignConfigError(
            f"schedule {expression!r} is not a cron expression ({CRON_HELP}): {exc}"
        ) from exc
    return expression.strip()
