"""Shared render fixtures: settings, compiled shipped templates and a rendered digest."""

from __future__ import annotations

import pytest

from newsletter.config import Settings
from newsletter.render.compile import CompiledTemplate, TemplateCache, load_template_source
from newsletter.render.fixtures import render_fixture
from newsletter.render.render import RenderedMessage


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


@pytest.fixture(scope="session")
def rendered_digest(digest: CompiledTemplate, settings: Settings) -> RenderedMessage:
    return render_fixture(digest, settings)
