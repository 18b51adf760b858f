"""The documentation stays true: examples parse, links stay inside the repository, every
command is in the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from newsletter.cli import app
from newsletter.plan.campaigns import CampaignConfig, parse_campaign_config
from newsletter.plan.segments import RULE_KEYS, parse_segment

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "templates/README.md"]


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def test_every_campaign_example_is_a_valid_config() -> None:
    blocks = yaml_blocks(ROOT / "docs" / "campaigns.md")
    for block in blocks:
        parse_campaign_config(yaml.safe_load(block), campaign="docs")
    for key in CampaignConfig.model_fields:  # every key has an example of its own
        assert any(b.startswith(f"{key}:") for b in blocks[1:]), key


def test_every_segment_example_parses() -> None:
    blocks = yaml_blocks(ROOT / "docs" / "segments.md")
    for number, block in enumerate(blocks):
        parse_segment(block, source=f"docs/segments.md block {number}")
    for key in RULE_KEYS:  # every rule has an example
        assert any(re.search(rf"^rule:\n\s*{key}:", b, re.M) for b in blocks), key


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_point_inside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if re.match(r"https?://", target):
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), target
    assert "../shared" not in text and "/work/" not in text


def _commands() -> list[str]:
    names = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
    for group in app.registered_groups:
        names += [f"{group.name} {c.name}" for c in group.typer_instance.registered_commands]
    return names


def test_the_readme_command_table_names_every_command_and_the_key_options() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Commands") : readme.index("### Tracking service")]
    for name in _commands():
        assert f"`newsletter {name}" in table, name
    for option in ("--kind", "--schedule", "--send-all", "memory:", "run list", "--new-run"):
        assert option in table, option
    assert "(templates/README.md)" in readme
    assert "(docs/segments.md)" in readme and "(docs/campaigns.md)" in readme
