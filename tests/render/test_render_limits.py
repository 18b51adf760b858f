"""Template limits with known answers: ordinary templates render, bombs stop with a render
error naming the limit, over-nested templates are lint errors (and never a RecursionError),
and links are judged as a browser reads them."""

from __future__ import annotations

import pytest

from newsletter.render.compile import CompileError, TemplateSource, compile_template
from newsletter.render.links import MessageLinks, rewrite_html_links, rewrite_url
from newsletter.render.lint import lint_file, lint_template
from newsletter.render.render import _render
from newsletter.render.sandbox import RenderError, environment

SILENT_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
BODY = "<mjml><mj-body><mj-section><mj-column>{}</mj-column></mj-section></mj-body></mjml>"
LINKS = MessageLinks(base_url="https://n.example", secret_key="k" * 43, message_id=7)


def render(source: str) -> str:
    from newsletter.render import limits

    with limits.deadline():
        return _render(environment(html=False).from_string(source), {}, name="t.txt")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 2 ** 10 }}", "1024"),
        ("{{ (-3) ** 3 }}", "-27"),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ [1] * 2 }}", "[1, 1]"),
        ("{{ '%5d|%-3s|%.2f' % (3, 'a', 1.5) }}", "    3|a  |1.50"),
        ("{{ 'x'.center(5, '-') }}", "--x--"),
        ("{{ 'a-b'|replace('-', '+') }}", "a+b"),
        ("{{ [1, 2, 3]|batch(2)|list }}", "[[1, 2], [3]]"),
        ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
        ("{{ ', '.join(['a', 'b']) }}", "a, b"),
    ],
)
def test_ordinary_templates_render_as_before(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("{{ 10 ** (10 ** 8) }}", "too large"),
        ("{{ 7 ** 100000 }}", "too large"),
        ("{{ 'x' * 10 ** 9 }}", "the repeated value would be"),
        ("{{ [0] * 10 ** 8 }}", "the repeated value would be"),
        ("{{ 'x'.ljust(10 ** 9) }}", "str.ljust()"),
        ("{{ ('a' * 1000)|replace('a', 'b' * 10000) }}", "|replace"),
        ("{{ ('a' * 1000).replace('a', 'b' * 10000) }}", "str.replace()"),
        ("{{ '%0999999999d' % 1 }}", "format width"),
        ("{{ '%*d' % (10 ** 9, 1) }}", "format width"),
        ("{{ '%9999d'|format(1) }}", "format width"),
        ("{{ [1]|batch(10 ** 9)|list }}", "|batch argument"),
        ("{{ 'a'|indent(10 ** 7) }}", "|indent"),
        ("{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}", "more than 1,000,000"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "took longer",
        ),
        ("{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}", "recurses"),
    ],
)
def test_template_bombs_are_render_errors_naming_the_limit(source: str, needle: str) -> None:
    with pytest.raises(RenderError, match=r"t\.txt") as err:
        render(source)
    assert needle in str(err.value)


def _source(text: str) -> TemplateSource:
    mjml = BODY.format("<mj-text>hi</mj-text>")
    return TemplateSource(name="deep", mjml=mjml, subject="Hi", preheader="", text=text)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("ok\n{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}", 2, "brackets nest deeper than 32"),
        ("a\nb\n" + "{% if 1 %}" * 400 + "x" + "{% endif %}" * 400, 3, "blocks nest deeper"),
        ("{% for i in range(2) %}" * 30 + "{% endfor %}" * 30, 1, "blocks nest deeper than 16"),
    ],
)
def test_over_nested_templates_are_lint_errors_and_compile_errors(
    text: str, line: int, needle: str
) -> None:
    [issue] = lint_file(text, path="deep/text.txt", mjml=False)
    assert (issue.line, needle in issue.message) == (line, True)
    assert any(needle in i.message for i in lint_template(_source(text)))
    with pytest.raises(CompileError):
        compile_template(_source("{% if 1 %}" * 400 + "{% endif %}" * 400))


def test_nesting_within_the_limits_lints_clean() -> None:
    text = "{% for i in range(2) %}" * 16 + "{{ i }}" + "{% endfor %}" * 16
    assert lint_file(text, path="t.txt", mjml=False) == []
    assert lint_file("{{ " + "(" * 32 + "1" + ")" * 32 + " }}", path="t.txt", mjml=False) == []


@pytest.mark.parametrize(
    "url",
    [
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        " \x01javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "//evil.example/x",
        "\\\\evil.example/x",
        "/\\evil.example/x",
        "\t//evil.example/x",
        "data:text/html,hi",
    ],
)
def test_dangerous_links_become_inert(url: str) -> None:
    assert rewrite_url(url, links=LINKS, slots={}) == "#"


@pytest.mark.parametrize(
    "href",
    ["java&#9;script:alert(1)", "java&Tab;script:x", "&#x2F;/evil.example/x", "//evil.example"],
)
def test_entity_encoded_links_are_decoded_before_the_scheme_check(href: str) -> None:
    html = f'<a href="{href}">x</a>'
    assert rewrite_html_links(html, links=LINKS, slots={}) == '<a href="#">x</a>'
    mjml = BODY.format(f'<mj-button href="{href}">x</mj-button>')
    issues = lint_file(mjml, path="t.mjml", mjml=True)
    assert any("scheme" in i.message for i in issues), issues


def test_ordinary_links_are_kept_or_tracked() -> None:
    assert rewrite_url("https://example.com/a", links=LINKS, slots={}).startswith(
        "https://n.example/t/c/"
    )
    for kept in ("mailto:a@example.com", "#top", "/relative", "https://n.example/u/x"):
        assert rewrite_url(kept, links=LINKS, slots={}) == kept
