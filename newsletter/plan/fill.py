"""Fill the slots of a batch of messages: sections, exploration, the popularity holdout.

Personalized messages: each gets ``explore_counts`` exploration slots, and the remaining
slots are split over the campaign's sections. An exploration slot is, with probability
``BANK_SHARE``, the Thompson bank's pick (:mod:`newsletter.plan.exploration`: items the whole
audience has seen little of), otherwise a uniform draw from the reader's own next candidates:
the rarely shown items of the exploration pool that the ranker rates for this reader but that
the message would not show without exploration. The logged propensity is the mixture's
probability of the pick. A bank-only policy explores items at random for the reader, and its
slots click a fraction of the rest of the email; the reader's own part gives a new item its
first exposures among the people likely to want it, while the bank keeps every pool item
possible (what off-policy estimates of other policies need).

The exploration slots are taken from the largest section quota. Sections are filled in order
with candidates not already in the message; a section short of candidates leaves its slots to
a backfill pass over every section's remaining candidates, and what is still missing comes
from the source's fallback (popular, then newest live items). Items never
repeat inside a message. Deterministic slots have propensity 1; exploration slots carry the
probability the policy chose them. Popular-arm messages take the popularity ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from newsletter.plan.campaigns import CampaignConfig
from newsletter.plan.exploration import ThompsonBank, explore, explore_counts
from newsletter.plan.slots import WIDE, Candidates, SlotSource, sentence_for

Array = np.ndarray
BANK_SHARE = 0.5  # chance an exploration slot is the bank's pick (module docstring)
PERSONAL = 16  # the reader's own exploration candidates, at most


class PlannedSlot(NamedTuple):
    """One slot before persistence (item is a catalogue index); a tuple, as there are many."""

    section: str
    item: int
    source: str
    score: float
    propensity: float
    reason_kind: str
    reason_anchor: str | None
    reason_text: str


def reduce_quotas(quotas: list[int], take: int) -> list[int]:
    """Remove `take` slots from the largest quotas (ties: the later section gives first)."""
    out = list(quotas)
    for _ in range(min(take, sum(out))):
        biggest = max(range(len(out)), key=lambda i: (out[i], i))
        out[biggest] -= 1
    return out


def exploration_picks(
    bank: ThompsonBank,
    history: sp.csr_matrix,
    users: Array,
    counts: Array,
    rng: np.random.Generator,
    personal: Array | None = None,
) -> tuple[Array, Array]:
    """Per message, up to counts[b] exploration items (-1 = none) and their propensities;
    with ``personal`` candidates, each slot mixes the bank and them (``BANK_SHARE``)."""
    width = int(counts.max()) if len(counts) else 0
    items = np.full((len(users), width), -1, dtype=np.int64)
    props = np.zeros((len(users), width))
    excluded = history[users].toarray() > 0
    for j in range(width):
        rows = np.flatnonzero(counts > j)
        block = excluded[rows]
        mine = None if personal is None else personal[rows]
        items[rows, j], props[rows, j] = explore(
            bank, block, rng=rng, personal=mine, bank_share=BANK_SHARE
        )
        excluded[rows] = block
    return items, props


def personal_candidates(
    ranked: Array, bank: ThompsonBank, unexplored: list[list[PlannedSlot]]
) -> Array:
    """Per message, the rarely shown items of the exploration pool among its ranked candidates
    that the message would not show without exploration (``unexplored``), best first, at most
    ``PERSONAL``."""
    rare = bank.rarely_shown()
    pool = np.zeros(int(max(ranked.max(initial=0), rare.max(initial=0))) + 1, bool)
    pool[rare] = True
    width = max((len(slots) for slots in unexplored), default=0)
    shown = np.full((len(ranked), max(width, 1)), -1, dtype=np.int64)
    for b, slots in enumerate(unexplored):
        shown[b, : len(slots)] = [slot.item for slot in slots]
    keep = (ranked >= 0) & pool[np.maximum(ranked, 0)]
    keep &= ~(ranked[:, :, None] == shown[:, None, :]).any(axis=2)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :PERSONAL]
    out = np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(ranked, order, 1), -1)
    if out.shape[1] < PERSONAL:
        out = np.hstack([out, np.full((len(out), PERSONAL - out.shape[1]), -1, dtype=np.int64)])
    return out


def popular_picks(source: SlotSource, users: Array, counts: Array) -> tuple[Array, Array]:
    """Per message, the counts[b] most popular unconsumed items (propensity 1): the
    ``exploration_policy = "popular"`` alternative to Thompson sampling."""
    width = int(counts.max()) if len(counts) else 0
    items = np.full((len(users), width), -1, dtype=np.int64)
    if width == 0:
        return items, np.zeros((len(users), 0))
    ranked = source.popular(users, width).items  # consumed items are already -1
    for b in range(len(users)):
        row = [int(i) for i in ranked[b] if i >= 0][: int(counts[b])]
        items[b, : len(row)] = row
    return items, np.where(items >= 0, 1.0, 0.0)


@dataclass(frozen=True)
class _Rows:
    """A section's candidates as Python lists (cheap to walk message by message)."""

    items: list[list[int]]
    scores: list[list[float]]
    anchors: list[list[object]] | None
    source: str
    reason_kind: str
    sentence: str
    fallback: tuple[str, str]

    @classmethod
    def of(cls, cand: Candidates) -> _Rows:
        anchors = None if cand.anchors is None else cand.anchors.tolist()
        return cls(
            cand.items.tolist(),
            cand.scores.tolist(),
            anchors,
            cand.source,
            cand.reason_kind,
            cand.sentence,
            cand.fallback,
        )


_SENTENCES: dict[tuple[str, object, str, tuple[str, str]], tuple[str, str, str | None]] = {}


def _sentence(rows: _Rows, anchor: object) -> tuple[str, str, str | None]:
    """(kind, text, anchor) of a slot, memoised: many slots share one sentence."""
    key = (rows.sentence, anchor, rows.reason_kind, rows.fallback)
    if key not in _SENTENCES:
        if len(_SENTENCES) > 100_000:
            _SENTENCES.clear()
        _SENTENCES[key] = sentence_for(
            rows.sentence, anchor, kind=rows.reason_kind, fallback=rows.fallback
        )
    return _SENTENCES[key]


def _take(
    rows: _Rows, b: int, title: str, want: int, used: set[int], out: list[PlannedSlot]
) -> int:
    """Append up to `want` unused candidates of row b to `out`; returns how many were added."""
    added = 0
    anchors = None if rows.anchors is None else rows.anchors[b]
    scores = rows.scores[b]
    for c, item in enumerate(rows.items[b]):
        if added >= want:
            break
        if item < 0 or item in used:
            continue
        kind, text, anchor = _sentence(rows, None if anchors is None else anchors[c])
        out.append(PlannedSlot(title, item, rows.source, scores[c], 1.0, kind, anchor, text))
        used.add(item)
        added += 1
    return added


def assemble(
    b: int,
    *,
    config: CampaignConfig,
    rows: list[_Rows],
    picks: list[int],
    props: list[float],
    means: Array,
    quotas: dict[int, list[int]],
    fallback: Sequence[_Rows] = (),
) -> list[PlannedSlot]:
    """The slots of message b: sections in order, backfill, fallback, then exploration."""
    explore_slots = [
        PlannedSlot(
            config.exploration_section,
            i,
            "explore",
            float(means[i]),
            p,
            "explore",
            None,
            "Something new we think you might like",
        )
        for i, p in zip(picks, props, strict=True)
        if i >= 0
    ]
    used = {s.item for s in explore_slots}
    if len(explore_slots) not in quotas:
        quotas[len(explore_slots)] = reduce_quotas(config.section_quotas(), len(explore_slots))
    quota = quotas[len(explore_slots)]
    per_section: list[list[PlannedSlot]] = [[] for _ in config.sections]
    for k, section in enumerate(config.sections):
        _take(rows[k], b, section.title, quota[k], used, per_section[k])
    missing = config.n_items - len(explore_slots) - sum(len(s) for s in per_section)
    for k, section in enumerate(config.sections):
        if missing <= 0:
            break
        missing -= _take(rows[k], b, section.title, missing, used, per_section[k])
    short = next((k for k, q in enumerate(quota) if len(per_section[k]) < q), 0)
    for extra in fallback:
        if missing <= 0:
            break
        title = config.sections[short].title
        missing -= _take(extra, b, title, missing, used, per_section[short])
    return [slot for section in per_section for slot in section] + explore_slots


def fill_personalized(
    source: SlotSource,
    users: Array,
    *,
    config: CampaignConfig,
    bank: ThompsonBank,
    history: sp.csr_matrix,
    means: Array,
    rng: np.random.Generator,
) -> list[list[PlannedSlot]]:
    """Slots for a batch of personalized messages (user indices), sections plus exploration."""
    counts = explore_counts(
        len(users), n_items=config.n_items, share=config.exploration_share, rng=rng
    )
    base = config.section_quotas()
    rows = [
        _Rows.of(source.candidates(s.kind, users, q + config.n_items))
        for s, q in zip(config.sections, base, strict=True)
    ]
    fallback = [_Rows.of(c) for c in source.fallback(users, config.n_items)]
    quotas: dict[int, list[int]] = {}

    def message(b: int, picks: list[int], props: list[float]) -> list[PlannedSlot]:
        return assemble(
            b,
            config=config,
            rows=rows,
            picks=picks,
            props=props,
            means=means,
            quotas=quotas,
            fallback=fallback,
        )

    if config.exploration_policy == "popular":
        picks, props = popular_picks(source, users, counts)
    elif counts.any():
        ranked = source.candidates("top_picks", users, WIDE).items
        unexplored = [message(b, [], []) for b in range(len(users))]
        personal = personal_candidates(ranked, bank, unexplored)
        picks, props = exploration_picks(bank, history, users, counts, rng, personal)
    else:
        picks, props = exploration_picks(bank, history, users, counts, rng)
    pick_rows, prop_rows = picks.tolist(), props.tolist()
    return [message(b, pick_rows[b], prop_rows[b]) for b in range(len(users))]


def fill_popular(
    source: SlotSource, users: Array, *, config: CampaignConfig
) -> list[list[PlannedSlot]]:
    """Slots for the popularity holdout: the popularity ranking, under the first section title."""
    cand = _Rows.of(source.popular(users, config.n_items))
    title = config.sections[0].title
    out: list[list[PlannedSlot]] = []
    for b in range(len(users)):
        slots: list[PlannedSlot] = []
        _take(cand, b, title, config.n_items, set(), slots)
        out.append(slots)
    return out
