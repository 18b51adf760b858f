"""The aging protocol: next week's reads of next week's items, on tiny data and a world."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.recommend.base import DAY, InteractionData
from newsletter.recommend.splits import aging_split

CUT = 1_000 * DAY


def test_aging_split_tests_next_week_reads_of_next_week_items() -> None:
    """Known answer: only human reads, in the window, of items published in the window."""
    published = np.array([CUT - 30 * DAY, CUT - 2 * DAY, CUT + DAY, CUT + 3 * DAY, CUT + 9 * DAY])
    rows = [  # (user, item, time, machine)
        (0, 0, CUT - 5 * DAY, False),
        (0, 2, CUT + 2 * DAY, False),  # test: new item, in the window
        (0, 3, CUT + 4 * DAY, True),  # a machine's click: not a read
        (1, 1, CUT - DAY, False),
        (1, 0, CUT + DAY, False),  # an old item read in the window: not a test item
        (2, 3, CUT + 5 * DAY, False),  # no training event: not evaluated
        (3, 1, CUT - DAY, False),
        (3, 3, CUT + 8 * DAY, False),  # after the window
    ]
    u, i, t, machine = (np.array(x) for x in zip(*rows, strict=True))
    data = InteractionData(
        n_users=4,
        n_items=5,
        user_idx=u,
        item_idx=i,
        kind=np.full(len(u), "view"),
        timestamp=t.astype(float),
        machine=machine,
    )
    split = aging_split(data, published, cut=CUT, horizon=7 * DAY)
    assert split.users.tolist() == [0]
    assert split.test[0].indices.tolist() == [2]
    assert np.all(split.train.timestamp < CUT) and len(split.train.user_idx) == 3
    assert split.candidates.tolist() == [True, True, True, True, False]
    assert split.exclude[0].indices.tolist() == [0]


def test_evaluate_world_reports_fresh_share_and_only_content_finds_new_items() -> None:
    """Fresh items have no behaviour before the cut: popularity never recommends one, the
    content models do, and every model reports the share of young items it recommended."""
    result = CliRunner().invoke(
        app, ["evaluate", "--world", "news", "--subscribers", "400", "--weeks", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{") :])
    assert out["protocol"] == "aging" and out["world"] == "news" and out["users"] > 20
    assert out["fresh_items"] > 100 and out["test_items"] >= out["users"]
    models = out["models"]
    assert models["popularity"]["fresh_share"] == 0.0
    assert models["popularity"]["ndcg@10"] == 0.0
    assert models["content"]["fresh_share"] > 0.05 and models["content"]["ndcg@10"] > 0.0
    for row in models.values():
        assert 0.0 <= row["fresh_share"] <= 1.0 and 0.0 <= row["ndcg@10"] <= 1.0


def test_evaluate_sources_and_protocols_are_one_line_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    both = runner.invoke(app, ["evaluate", "--data", str(tmp_path), "--world", "news"])
    neither = runner.invoke(app, ["evaluate"])
    wrong = runner.invoke(app, ["evaluate", "--world", "news", "--protocol", "temporal-20"])
    unknown = runner.invoke(app, ["evaluate", "--world", str(tmp_path / "nowhere.toml")])
    for result in (both, neither, wrong, unknown):
        assert result.exit_code == 2 and "Traceback" not in result.output
    assert "exactly one of --data" in both.output and "exactly one of --data" in neither.output
    assert "aging protocol" in wrong.output
    assert "nowhere.toml" in unknown.output
