"""Shared render fixtures: settings, compiled shipped templates and a rendered digest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.config import Settings
from newsletter.render.compile import CompiledTemplate, TemplateCache, load_template_source
from newsletter.render.context import build_context
from newsletter.render.fixtures import fixture_input
from newsletter.render.render import RenderedMessage, render_message

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        secret_key="render-test-secret-0123456789",
        base_url="https://news.example.com",
        sender="The Weekly Read <weekly@news.example.com>",
        postal_address="Example Publishing, 1 Example Street, Example City",
    )


@pytest.fixture(scope="session")
def template_cache() -> TemplateCache:
    return TemplateCache()


@pytest.fixture(scope="session")
def digest(template_cache: TemplateCache) -> CompiledTemplate:
    return template_cache.get(load_template_source("digest"))


@pytest.fixture(scope="session")
def trigger(template_cache: TemplateCache) -> CompiledTemplate:
    return template_cache.get(load_template_source("trigger"))


def render_fixture(compiled: CompiledTemplate, settings: Settings, **overrides) -> RenderedMessage:
    """Render the fixture input (with overrides) through the production path."""
    data = {**fixture_input(kind="trigger" if compiled.name == "trigger" else "digest")}
    data.update(overrides)
    context = build_context(data, settings=settings)
    return render_message(compiled, context, settings=settings, now=NOW)


@pytest.fixture(scope="session")
def rendered_digest(digest: CompiledTemplate, settings: Settings) -> RenderedMessage:
    return render_fixture(digest, settings)
