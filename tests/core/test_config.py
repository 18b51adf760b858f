"""Settings: environment variables win over newsletter.toml; every mistake is one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import ConfigError, load_settings


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder without NEWSLETTER_* variables (a newsletter.toml goes here)."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


CRM = """
secret_key = "from-the-file"
half_life_days = 30
[sources.crm]
url = "sqlite:///file.db"
subscribers = "SELECT 1"
"""


def test_environment_variables_win_over_the_toml_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "newsletter.toml").write_text(CRM, encoding="utf-8")
    assert load_settings().sources["crm"].url == "sqlite:///file.db"
    monkeypatch.setenv("NEWSLETTER_SOURCES__CRM__URL", "sqlite:///env.db")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "from-the-environment")
    settings = load_settings()
    assert settings.sources["crm"].url == "sqlite:///env.db"
    assert settings.sources["crm"].subscribers == "SELECT 1"  # the rest of the table stays
    assert settings.secret_key == "from-the-environment"
    assert settings.half_life_days == 30
    assert load_settings(secret_key="argument").secret_key == "argument"


def test_the_file_comes_from_config_or_newsletter_config(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = workdir / "other.toml"
    other.write_text('secret_key = "other"\n', encoding="utf-8")
    assert load_settings(other).secret_key == "other"
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(other))
    assert load_settings().secret_key == "other"
    with pytest.raises(ConfigError, match=r"missing\.toml does not exist"):
        load_settings(workdir / "missing.toml")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('database_url = "foo://x"', "database_url: unsupported database 'foo'; use sqlite:///"),
        ('database_url = "postgresql://u@h:port/db"', "database_url: 'postgresql://u@h:port/db"),
        ('database_url = "not a url"', "is not a database URL (e.g. postgresql://"),
        ('secrte_key = "x"', "unknown key 'secrte_key' (did you mean 'secret_key'?)"),
        ("half_life_days = -3", "half_life_days: should be greater than 0 (got -3)"),
        ("[interaction_weights]\nread = -1", "the weight of 'read' is -1; weights must be >= 0"),
        ("[interaction_weights]\nraed = 1", "unknown interaction kind 'raed' (did you mean 'read'"),
        ('[sources.crm]\nurl = "sqlite:///x"\nitms = "x"', "'sources.crm.itms' (did you mean"),
        ('[sources.crm]\nurl = "::"', "sources.crm.url: '::' is not a database URL"),
        ('base_url = "news.example.com"', "base_url: 'news.example.com' must start with https://"),
        ("x = ", "newsletter.toml: not valid TOML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key_and_the_fix(
    workdir: Path, toml: str, expected: str
) -> None:
    (workdir / "newsletter.toml").write_text(toml + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["stats"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: newsletter.toml"), result.output
    assert expected in lines[0]


def test_a_latin1_file_names_the_line_and_asks_for_utf8(workdir: Path) -> None:
    (workdir / "newsletter.toml").write_bytes(b'sender = "x"\npostal_address = "Caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == "newsletter.toml:2: not UTF-8 (byte 0xe9); save the file as UTF-8"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("NEWSLETTER_INTERACTION_WEIGHTS", "notjson", "NEWSLETTER_INTERACTION_WEIGHTS: not JSON"),
        ("NEWSLETTER_HALF_LIFE_DAYS", "-1", "NEWSLETTER_HALF_LIFE_DAYS: half_life_days: should"),
        ("NEWSLETTER_DATABASE_URL", "foo://x", "NEWSLETTER_DATABASE_URL: database_url: unsupp"),
        ("NEWSLETTER_DEFAULT_TIMEZONE", "Mars/Base", "unknown IANA timezone 'Mars/Base'"),
    ],
)
def test_a_bad_environment_variable_is_named(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["stats"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and expected in result.output, result.output
    assert result.output.startswith("error: environment variable " + name)


def test_several_mistakes_get_a_line_each(workdir: Path) -> None:
    (workdir / "newsletter.toml").write_text("half_life_days = 0\nsecrte_key = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert any("half_life_days" in line for line in lines)
    assert any("secrte_key" in line for line in lines)
