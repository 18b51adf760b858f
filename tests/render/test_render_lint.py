"""The template linter: each rule fires on the right line, and shipped templates are clean."""

from __future__ import annotations

import pytest

from newsletter.render.compile import load_template_source
from newsletter.render.lint import MAX_TEMPLATE_BYTES, lint_file, lint_template


def _wrap(body: str, *, column: bool = True) -> str:
    """The body inside a column (or directly in mj-body), starting on line 5 either way."""
    if not column:
        return f"<mjml>\n<mj-body>\n\n\n{body}\n</mj-body>\n</mjml>\n"
    head = "<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n"
    return f"{head}{body}\n</mj-column>\n</mj-section>\n</mj-body>\n</mjml>\n"


def _issues(body: str, *, column: bool = True) -> list[tuple[int, str]]:
    text = _wrap(body, column=column)
    return [(i.line, i.message) for i in lint_file(text, path="t.mjml", mjml=True)]


@pytest.mark.parametrize("name", ["digest", "trigger"])
def test_shipped_templates_lint_clean(name) -> None:
    assert lint_template(load_template_source(name)) == []


def test_unknown_variables_are_errors_with_suggestions() -> None:
    issues = _issues(
        "<mj-text>{{ subscriber.frist_name }}</mj-text>\n<mj-text>{{ subscriber_name }}</mj-text>"
    )
    assert (5, "unknown variable 'subscriber.frist_name' (did you mean 'first_name'?)") in issues
    assert (6, "unknown variable 'subscriber_name' (did you mean 'subscriber'?)") in issues


def test_loop_variables_follow_the_documented_context() -> None:
    body = (
        "<mj-raw>{% for section in sections %}{% for slot in section.slots %}</mj-raw>\n"
        "<mj-text>{{ slot.item.title }} {{ slot.reason.text }} {{ loop.index }}</mj-text>\n"
        "<mj-text>{{ slot.item.tilte }}</mj-text>\n"
        "<mj-raw>{% endfor %}{% endfor %}</mj-raw>"
    )
    expected = [(7, "unknown variable 'slot.item.tilte' (did you mean 'title'?)")]
    assert _issues(body, column=False) == expected


def test_free_form_attributes_and_filters_are_accepted() -> None:
    body = "<mj-text>{{ subscriber.attributes.plan|upper }} {{ hero.item.topics|join(', ') }}"
    body += "</mj-text>"
    assert _issues(body) == []


def test_jinja_in_layout_attributes_is_an_error_but_allowed_in_href() -> None:
    body = '<mj-image width="{{ w }}" src="{{ hero.item.image_url }}" href="{{ hero.item.url }}" />'
    issues = _issues(body)
    assert len(issues) == 2
    assert any(line == 5 and "numeric or layout attribute 'width'" in m for line, m in issues)
    assert (5, "unknown variable 'w'") in issues


def test_control_flow_outside_mj_raw_is_an_error() -> None:
    issues = _issues("{% if hero %}\n<mj-text>x</mj-text>\n{% endif %}")
    assert [line for line, _ in issues] == [5, 7]
    assert "must sit inside <mj-raw> (found in <mj-column>)" in issues[0][1]


def test_control_flow_in_an_mj_raw_inside_a_column_is_an_error() -> None:
    # MJML hoists such an mj-raw before the column's content: the {% if %} would wrap nothing
    # (that shipped every card of an item without an image as <img src="None">).
    image = '<mj-image src="{{ hero.item.image_url }}" />'
    body = "<mj-raw>{% if hero.item.image_url %}</mj-raw>\n" + image
    issues = _issues("<mj-raw>{% for slot in sections %}</mj-raw>\n<mj-raw>{% endfor %}</mj-raw>")
    assert [line for line, _ in issues] == [5, 6]
    assert "put the <mj-raw> around a whole <mj-section>" in issues[0][1]
    assert any("wraps nothing" in m for _, m in _issues(body + "\n<mj-raw>{% endif %}</mj-raw>"))
    assert _issues(body + "\n<mj-raw>{% endif %}</mj-raw>", column=False) == []


def test_angle_brackets_inside_jinja_tags_are_errors() -> None:
    body = "<mj-raw>{% if slot_count > 3 %}</mj-raw>\n<mj-raw>{% endif %}</mj-raw>"
    issues = _issues(body, column=False)
    assert len(issues) == 1 and issues[0][0] == 5 and "is gt" in issues[0][1]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "file:///etc/passwd"])
def test_disallowed_link_schemes_are_errors(url) -> None:
    issues = _issues(f'<mj-button href="{url}">x</mj-button>')
    assert len(issues) == 1 and issues[0][0] == 5 and "link scheme" in issues[0][1]


def test_allowed_link_schemes_pass() -> None:
    body = '<mj-text><a href="https://a.example">a</a> <a href="mailto:x@y.z">m</a></mj-text>'
    assert _issues(body) == []


def test_unbalanced_and_unknown_mjml_elements_name_line_and_column() -> None:
    issues = lint_file(_wrap("<mj-txt>x</mj-txt>"), path="t.mjml", mjml=True)
    assert (issues[0].line, issues[0].column) == (5, 1)
    assert "unknown MJML element <mj-txt>" in issues[0].message
    issues = lint_file(_wrap("  <mj-text>x</mj-column>"), path="t.mjml", mjml=True)
    assert (issues[0].line, issues[0].column) == (5, 13)


def test_jinja_syntax_errors_name_the_line() -> None:
    issues = lint_file("Hi\n{{ subscriber.name \n", path="subject.txt", mjml=False)
    assert len(issues) == 1 and issues[0].line == 2 and "Jinja syntax" in issues[0].message


def test_size_cap() -> None:
    issues = lint_file("x" * (MAX_TEMPLATE_BYTES + 1), path="big.txt", mjml=False)
    assert len(issues) == 1 and "limit" in issues[0].message


def test_issue_renders_as_path_line_column() -> None:
    issue = lint_file("{{ nope }}", path="digest/subject.txt", mjml=False)[0]
    assert str(issue) == "digest/subject.txt:1:1: error: unknown variable 'nope'"


@pytest.mark.parametrize(
    "construct",
    [
        "{% macro card(x) %}{{ x }}{% endmacro %}",
        "{% set block %}<b>x</b>{% endset %}",
        "{% include 'other.mjml' %}",
    ],
)
def test_macros_block_set_and_include_are_refused_in_mjml(construct) -> None:
    issues = _issues(f"<mj-raw>{construct}</mj-raw>")
    assert any(line == 5 and "not supported in MJML" in m for line, m in issues), issues


def test_templates_readme_documents_every_context_field() -> None:
    from pathlib import Path

    from newsletter.render.context import CONTEXT_FIELDS

    readme = (Path(__file__).resolve().parents[2] / "templates" / "README.md").read_text()
    for name in CONTEXT_FIELDS:
        assert f"| `{name}` |" in readme, name


def test_raw_blocks_are_refused_in_mjml() -> None:
    from newsletter.render.compile import CompileError, TemplateSource, compile_template

    body = "<mj-raw>{% raw %}{{ not jinja }}{% endraw %}</mj-raw>"
    assert any("raw" in m for _, m in _issues(body))
    source = TemplateSource(name="t", mjml=_wrap(body), subject="s", preheader="", text="t")
    with pytest.raises(CompileError, match=r"t/template.mjml:5:9: \{% raw %\}"):
        compile_template(source)
