"""Settings: every one documented, blank values mean defaults, bad values are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.choices[0] if alias else f"NEWSBOT_{name.upper()}")  # type: ignore[union-attr]
    return names


def test_env_example_lists_every_setting_with_a_comment() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z0-9_]+)=", text, re.M))
    assert listed == _env_names()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z0-9_]+=", line):
            assert lines[i - 1].startswith("# "), f"{line} has no comment above it"


def test_copied_env_example_gives_the_defaults(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.chroma_url is None and settings.discord_token is None
    assert not settings.llm_enabled and settings.shards is None


def test_prefix_and_conventional_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSBOT_TOP_K", "3")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("DISCORD_TOKEN", "abc")
    monkeypatch.setenv("NEWSBOT_SHARDS", "auto")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.top_k == 3 and s.llm_enabled and s.shards == "auto"
    assert s.discord_token is not None and s.discord_token.get_secret_value() == "abc"


def test_admin_guild_ids_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSBOT_ADMIN_GUILD_IDS", " 111111111111111111, 222222222222222222 ")
    assert Settings(_env_file=None).admin_guild_ids == [  # type: ignore[call-arg]
        111111111111111111, 222222222222222222]
    monkeypatch.setenv("NEWSBOT_ADMIN_GUILD_IDS", "111111111111111111, newsroom")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSBOT_TOP_K", "50")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("url", ["127.0.0.1:8080/v1", "localhost:11434/v1", "not a url",
                                 "ftp://127.0.0.1/v1", "http:///v1", "http://127.0.0.1:99999/v1"])
def test_a_model_endpoint_that_is_not_an_http_url_is_refused(
        monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    # Accepted, it turned every answer into a fallback ("unreachable") instead of one error.
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ValidationError, match="http:// or https://"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(("url", "root"), [
    ("http://127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080/v1"),
    ("http://127.0.0.1:11434/v1/chat/completions/", "http://127.0.0.1:11434/v1"),
    ("https://llm.example.org/api/v1/embeddings", "https://llm.example.org/api/v1"),
])
def test_a_model_endpoint_pasted_for_the_api_root_is_refused_naming_the_root(
        monkeypatch: pytest.MonkeyPatch, url: str, root: str) -> None:
    # Accepted, the client asked for .../chat/completions/chat/completions: a 404 per answer.
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ValidationError,
                       match=re.escape(f"the API root, not an endpoint: {root}")):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_model_endpoint_keeps_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", " https://llm.example.org:8443/api/v1/ ")
    assert Settings(_env_file=None).openai_base_url == "https://llm.example.org:8443/api/v1"  # type: ignore[call-arg]


@pytest.mark.parametrize(("name", "value", "said"), [
    ("NEWSBOT_LLM_TIMEOUT_S", "-1", "NEWSBOT_LLM_TIMEOUT_S: Input should be greater than 0"),
    ("OPENAI_BASE_URL", "localhost:8080/v1", "OPENAI_BASE_URL: must be an http:// or https://"),
    # Above 1 no article could ever be confident enough: every question would be refused.
    ("NEWSBOT_ABSTAIN_THRESHOLD", "4.2",
     "NEWSBOT_ABSTAIN_THRESHOLD: Input should be less than or equal to 1"),
    ("NEWSBOT_SHARDS", "-3", "NEWSBOT_SHARDS: a number of shards (2 or more), or auto"),
    ("NEWSBOT_SHARDS", "two", "NEWSBOT_SHARDS: a number of shards (2 or more), or auto"),
    ("NEWSBOT_ANSWER_BUDGET_S", "inf", "NEWSBOT_ANSWER_BUDGET_S: Input should be a finite"),
    ("NEWSBOT_DEV_GUILD_ID", "-1", "NEWSBOT_DEV_GUILD_ID: Input should be greater than 0"),
])
def test_a_bad_setting_is_one_line_naming_it_as_written(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        name: str, value: str, said: str) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(name, value)
    assert main(["ask", "what happened to the ferry?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid setting: {said}") and err.count("\n") == 1
    assert not (tmp_path / "data").exists()  # nothing was opened or created


@pytest.mark.parametrize("name", ["a/b", "-news", "news..old", "x" * 401])
def test_a_collection_name_chroma_cannot_hold_is_a_setting_error(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("NEWSBOT_COLLECTION", name)
    with pytest.raises(ValidationError, match="collection"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("NEWSBOT_COLLECTION", "news-2.sports_x")
    assert Settings(_env_file=None).collection == "news-2.sports_x"  # type: ignore[call-arg]
