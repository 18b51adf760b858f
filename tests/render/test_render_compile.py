"""Compile once per template version, keyed by source hash + engine version; errors name lines."""

from __future__ import annotations

import dataclasses

import mrml
import pytest

from newsletter.render import compile as compile_module
from newsletter.render.compile import (
    CompileError,
    TemplateCache,
    TemplateSource,
    compile_template,
    expand_includes,
    load_template_source,
)


@pytest.fixture
def mrml_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = mrml.to_html

    def counting(source, *args, **kwargs):
        calls.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(compile_module.mrml, "to_html", counting)
    return calls


def test_cache_compiles_each_version_once(mrml_calls) -> None:
    cache = TemplateCache()
    source = load_template_source("digest")
    first = cache.get(source)
    assert cache.get(load_template_source("digest")) is first
    assert len(mrml_calls) == 1
    edited = dataclasses.replace(source, subject="Changed {{ campaign.name }}")
    assert cache.get(edited) is not first
    assert len(mrml_calls) == 2 and len(cache) == 2


def test_key_covers_partials_and_engine_version(monkeypatch) -> None:
    source = load_template_source("digest")
    partials = dict(source.partials)
    partials["partials/footer.mjml"] += "<!-- v2 -->"
    assert dataclasses.replace(source, partials=partials).digest != source.digest
    monkeypatch.setattr(compile_module, "ENGINE_VERSION", "mrml-9.9.9+newsletter-2")
    assert (
        TemplateSource(
            **{f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
        ).digest
        != source.digest
    )


def test_disk_cache_skips_mrml_in_a_new_process(tmp_path, mrml_calls) -> None:
    source = load_template_source("trigger")
    TemplateCache(tmp_path).get(source)
    assert (tmp_path / f"{source.digest}.html").is_file()
    fresh = TemplateCache(tmp_path).get(source)
    assert len(mrml_calls) == 1
    assert "{{" in fresh.html_source and "<mj-" not in fresh.html_source


def test_partials_are_expanded_and_jinja_survives_mrml() -> None:
    source = load_template_source("digest")
    compiled = compile_template(source)
    assert "<mj-include" not in expand_includes(source.mjml, source.partials, path="x")
    assert "{% for slot in section.slots %}" in compiled.html_source
    assert "{{ slot.item.title }}" in compiled.html_source


def _source(mjml: str) -> TemplateSource:
    return TemplateSource(name="t", mjml=mjml, subject="s", preheader="", text="t")


def test_unbalanced_tags_report_line_and_column() -> None:
    mjml = (
        "<mjml>\n<mj-body>\n  <mj-section>\n    <mj-column>\n    </mj-section>\n</mj-body>\n</mjml>"
    )
    with pytest.raises(CompileError) as info:
        compile_template(_source(mjml))
    assert (info.value.line, info.value.column) == (5, 5)
    assert str(info.value).startswith("t/template.mjml:5:5: </mj-section> closes nothing")


def test_unclosed_and_unknown_elements_report_positions() -> None:
    with pytest.raises(CompileError, match=r"t/template.mjml:3:1: </mjml> closes nothing open"):
        compile_template(_source("<mjml>\n<mj-body>\n</mjml>"))
    with pytest.raises(CompileError, match=r"t/template.mjml:2:1: <mj-body> is never closed"):
        compile_template(_source("<mjml></mjml>\n<mj-body>\n"))
    with pytest.raises(CompileError, match=r":1:16: unknown MJML element <mj-sektion>"):
        compile_template(
            _source("<mjml><mj-body>\n<mj-sektion></mj-sektion></mj-body></mjml>".replace("\n", ""))
        )


def test_unknown_partial_and_jinja_syntax_errors_name_the_file() -> None:
    with pytest.raises(CompileError, match=r"unknown partial 'partials/nope.mjml'"):
        compile_template(
            _source('<mjml><mj-body><mj-include path="partials/nope.mjml" /></mj-body></mjml>')
        )
    bad = dataclasses.replace(_source("<mjml><mj-body></mj-body></mjml>"), text="a\n{% if %}")
    with pytest.raises(CompileError, match=r"t/text.txt:2:1: Jinja syntax"):
        compile_template(bad)


def test_unknown_template_name_lists_shipped_ones() -> None:
    shipped = "shipped templates: abandoned_cart, digest, more_on_topic, trigger, welcome"
    with pytest.raises(FileNotFoundError, match=shipped):
        load_template_source("nope")


@pytest.mark.parametrize(
    ("body", "where", "hint"),
    [
        ("<mj-text>x</mj-text>\n<!-- never closed", (6, 1), "comment is never closed"),
        ("<mj-text>a < b</mj-text>", (5, 12), "literal '<'"),
        ("<mj-image src=x />", (5, 1), "quote attribute values"),
    ],
)
def test_mrml_failures_are_located_with_a_hint(body, where, hint) -> None:
    head, tail = "<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n", "\n</mj-column>\n</mj-section>"
    mjml = f"{head}{body}{tail}\n</mj-body>\n</mjml>"
    with pytest.raises(CompileError, match=hint) as info:
        compile_template(_source(mjml))
    assert (info.value.line, info.value.column) == where
