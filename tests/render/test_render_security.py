"""Template injection fails with a clear security error, at lint time and at render time."""

from __future__ import annotations

import pytest

from newsletter.render.compile import TemplateSource, compile_template, load_template_source
from newsletter.render.context import build_context
from newsletter.render.fixtures import FIXTURE_NOW as NOW
from newsletter.render.fixtures import fixture_input
from newsletter.render.lint import lint_file
from newsletter.render.render import render_message
from newsletter.render.sandbox import RenderError, TemplateSecurityError

PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ subscriber.__class__ }}",
    "{{ subscriber|attr('__class__') }}",
    "{{ (''|attr('format'))('{0.__class__}', 1) }}",
    "{{ ('{0.__class__}'|attr('format'))(subscriber) }}",
    "{{ '{0.__class__.__mro__}'.format(subscriber) }}",
    "{{ ''['format'] }}",
    "{{ self.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__['os'] }}",
    "{% set f = ''.format %}{{ f }}",
]


def _source_with(payload: str) -> TemplateSource:
    shipped = load_template_source("digest")
    mjml = shipped.mjml.replace(
        '<mj-include path="partials/footer.mjml" />',
        f"<mj-section><mj-column><mj-text>{payload}</mj-text></mj-column></mj-section>",
    )
    return TemplateSource(
        name="evil",
        mjml=mjml,
        subject="Hi",
        preheader="",
        text=f"x {payload}",
        partials=shipped.partials,
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_payloads_raise_a_template_security_error(payload, settings) -> None:
    compiled = compile_template(_source_with(payload))
    context = build_context(fixture_input(), settings=settings)
    with pytest.raises(TemplateSecurityError, match="template security error"):
        render_message(compiled, context, settings=settings, now=NOW)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_payloads_are_lint_errors(payload) -> None:
    issues = lint_file(f"{payload}\n", path="evil.txt", mjml=False)
    assert any(
        "template security" in i.message or "unknown variable" in i.message for i in issues
    ), issues


def test_sandbox_does_not_execute_anything(settings, tmp_path) -> None:
    marker = tmp_path / "pwned"
    payload = (
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    compiled = compile_template(_source_with(payload))
    context = build_context(fixture_input(), settings=settings)
    with pytest.raises(TemplateSecurityError):
        render_message(compiled, context, settings=settings, now=NOW)
    assert not marker.exists()


def test_context_cannot_be_mutated_by_templates(settings) -> None:
    payload = "{{ subscriber.attributes.update({'plan': 'free'}) }}"
    compiled = compile_template(_source_with(payload))
    context = build_context(fixture_input(), settings=settings)
    with pytest.raises(RenderError, match="update"):
        render_message(compiled, context, settings=settings, now=NOW)
    assert context["subscriber"]["attributes"]["plan"] == "pro"
