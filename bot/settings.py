"""Configuration read from the environment and ``.env`` (pydantic-settings).

There is no global instance: the entry point builds one ``Settings`` and passes it down, so
tests build their own with explicit values.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from platformdirs import user_data_dir
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from retrieval.timeparse import zone_named


class Settings(BaseSettings):
    """Every setting newsbot reads; ``.env.example`` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        env_ignore_empty=True,  # a copied .env.example with blank lines means "default"
        allow_inf_nan=False,  # "inf" seconds or briefs a second is a typo, not a setting
    )

    # Where the store and the state live.
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("newsbot", appauthor=False)))
    chroma_url: str | None = None  # e.g. http://127.0.0.1:8000 : use a Chroma server
    collection: str = "news"  # base name of the live collection

    # Embeddings: the local MiniLM model (offline) or an OpenAI-compatible endpoint.
    embedding_backend: Literal["local", "openai"] = "local"
    embedding_model: str = "text-embedding-3-small"  # only for embedding_backend=openai
    embedding_quantized: bool = True  # int8 MiniLM: about twice as fast, same ranking quality
    embedding_batch_size: int = Field(default=8, ge=1, le=512)  # fastest on a few cores
    model_dir: Path | None = None  # where the local model is built; default: data_dir/models

    # Chat model: any OpenAI-compatible endpoint; without a key or base URL, answers are
    # extractive.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "NEWSBOT_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "NEWSBOT_OPENAI_BASE_URL")
    )
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=30.0, gt=0)
    llm_max_retries: int = Field(default=1, ge=0, le=5)
    llm_temperature: float = Field(default=0.1, ge=0, le=2)
    llm_max_tokens: int = Field(default=600, ge=32)
    # Which request fields carry the length cap: "auto" sends both and keeps the one a
    # server accepts when it refuses the pair.
    llm_token_fields: Literal["auto", "both", "max_tokens", "max_completion_tokens"] = "auto"
    # One deadline per answer, covering the follow-up rewrite, the answer and all retries;
    # past it the extractive answer is shown.
    answer_budget_s: float = Field(default=30.0, gt=0)

    # Retrieval and answers.
    top_k: int = Field(default=5, ge=1, le=10)  # sources per answer
    max_question_chars: int = Field(default=500, ge=20)
    history_turns: int = Field(default=8, ge=0, le=50)  # earlier messages read with a follow-up
    # "Today", "yesterday", "this year" and a `since` date are read in this IANA time zone
    # ("Europe/Paris"): a community's "today" starts at its own midnight, not UTC's.
    timezone: str = "UTC"
    # A confidence (half a cosine, half a share of the question's terms) between 0 and 1;
    # None: the tuned default in retrieval.params.
    abstain_threshold: float | None = Field(default=None, ge=0, le=1)

    # Discord.
    discord_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DISCORD_TOKEN", "NEWSBOT_DISCORD_TOKEN")
    )
    dev_guild_id: int | None = Field(default=None, gt=0)  # sync app commands to this guild only
    answer_in_threads: bool = True
    user_cooldown_s: float = Field(default=10.0, ge=0)
    max_concurrent_answers: int = Field(default=4, ge=1)
    max_waiting_answers: int = Field(default=16, ge=0)  # beyond these: "busy, try again"
    shards: int | Literal["auto"] | None = None  # None: one shard; "auto": Discord decides
    # Another Discord endpoint: a REST proxy in front of Discord, or a local test server.
    discord_api_base: str | None = None  # e.g. http://127.0.0.1:8080/api/v10
    discord_gateway_url: str | None = None  # e.g. ws://127.0.0.1:8080/gateway

    # Ingestion.
    fetch_timeout_s: float = Field(default=15.0, gt=0)  # the whole of one fetch, not per read
    max_feed_bytes: int = Field(default=10_000_000, ge=1000)
    # Fetch hosts on loopback, private, link-local or other non-public addresses (feeds on a
    # LAN); off, such URLs are refused so a source cannot reach the bot's own network.
    allow_private_urls: bool = False

    # The running service: feed watcher, admins, alerts.
    poll_minutes: int = Field(default=10, ge=1, le=10080)  # default interval per source
    feed_max_failures: int = Field(default=8, ge=1, le=100)  # in a row, then disabled
    # Members with these roles may post briefs, or use the admin commands, too.
    moderator_role_id: int | None = Field(default=None, gt=0)
    admin_role_id: int | None = Field(default=None, gt=0)
    # The servers whose admins manage what every server shares (sources, the store):
    # comma-separated ids; empty: the dev guild, else the bot's only server.
    admin_guild_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    mod_channel_id: int | None = Field(default=None, gt=0)  # failures of scheduled work go here
    brief_send_rate: float = Field(default=10.0, gt=0, le=50)  # briefs sent per second, at most
    # A channel's briefs at once, at most: more (a wave of articles on a topic, a channel
    # resumed after a long pause) go out as one list of their stories.
    brief_burst: int = Field(default=5, ge=1, le=50)

    @field_validator("openai_base_url", "chroma_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("openai_base_url")
    @classmethod
    def _api_root(cls, value: str | None) -> str | None:
        # A typo here is not a server that is down: refused at start, it is one error instead
        # of every answer falling back with "unreachable".
        if value is None:
            return None
        value = value.strip().rstrip("/")
        try:
            parts = urlsplit(value)
            ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
            ok = ok and " " not in value and (parts.port is None or parts.port > 0)
        except ValueError:  # a port out of range
            ok = False
        if not ok:
            raise ValueError("must be an http:// or https:// URL, the API root of an "
                             "OpenAI-compatible server such as http://127.0.0.1:8080/v1")
        # A pasted endpoint, which the client would extend again (".../chat/completions/chat/
        # completions"): every answer fell back with a 404.
        endpoint = re.search(r"/(?:chat/completions|completions|embeddings|models)$", value,
                             re.I)
        if endpoint:
            raise ValueError(f"must be the API root, not an endpoint: "
                             f"{value[: endpoint.start()]}")
        return value

    @field_validator("discord_api_base", "discord_gateway_url", mode="before")
    @classmethod
    def _endpoint(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip().rstrip("/")
        if not value:
            return None
        schemes = ("http://", "https://") if info.field_name == "discord_api_base" else (
            "ws://", "wss://")
        if not value.lower().startswith(schemes):
            raise ValueError(f"must start with {' or '.join(schemes)}")
        return value

    @field_validator("admin_guild_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        # Chroma's rule for the names made from it ("{collection}-{stamp}"), checked here
        # so that a bad value is a setting's error rather than a store's traceback.
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.))*", value) or len(value) > 400:
            raise ValueError("letters, digits and . _ - only (no '..'), starting with a letter "
                             "or digit, at most 400 characters")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if zone_named(value) is None:
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             "Europe/Paris or America/New_York)")
        return value

    @field_validator("shards", mode="before")
    @classmethod
    def _shards(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("", "0", "1", "none"):
                return None
            if value == "auto":
                return value
            if not value.isdigit():
                raise ValueError("a number of shards (2 or more), or auto; empty for one")
            value = int(value)
        if isinstance(value, int) and value < 1:
            raise ValueError("a number of shards (2 or more), or auto; empty for one")
        return value

    @property
    def zone(self) -> tzinfo:
        """The time zone questions are read in."""
        return zone_named(self.timezone) or UTC

    @property
    def llm_enabled(self) -> bool:
        """A chat model is configured (a key, or a local endpoint that needs none)."""
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def embedding_model_id(self) -> str:
        """The id recorded with vectors of the configured model (see retrieval.embeddings)."""
        if self.embedding_backend == "openai":
            return f"openai:{self.embedding_model}"
        return "minilm-l6-v2-int8" if self.embedding_quantized else "minilm-l6-v2"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"


def env_name(field: str) -> str:
    """A setting as it is written in the environment or .env (``llm_timeout_s`` ->
    ``NEWSBOT_LLM_TIMEOUT_S``; ``openai_base_url`` -> ``OPENAI_BASE_URL``)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"NEWSBOT_{field.upper()}"


def setting_errors(exc: ValidationError) -> str:
    """What is wrong with the settings, each named as it is written in .env, on one line."""
    out = []
    for err in exc.errors():
        where = ".".join(map(str, err["loc"]))
        # An aliased setting is reported under the alias it was read by, already as written.
        name = env_name(where) if where in Settings.model_fields else where or "setting"
        out.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(out)


def unknown_settings(environ: Mapping[str, str], env_file: Path = Path(".env")) -> list[str]:
    """Names that look like settings (``NEWSBOT_...``, in the environment or ``env_file``)
    and are none, each with the setting it was likely meant as: pydantic-settings ignores
    them, so a typo in .env would quietly leave the default in force."""
    known: set[str] = set()
    for field, info in Settings.model_fields.items():
        known.add(env_name(field).upper())
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            known.update(str(choice).upper() for choice in alias.choices)
    found: dict[str, str] = {}
    for name in environ:
        if name.upper().startswith("NEWSBOT_"):
            found[name] = ""
    try:
        in_file = dotenv_values(env_file) if env_file.is_file() else {}
    except (OSError, UnicodeDecodeError):  # reported when the settings are read
        in_file = {}
    for name in in_file:
        if name.upper().startswith("NEWSBOT_") and name not in found:
            found[name] = f" (in {env_file})"
    out = []
    for name, where in sorted(found.items()):
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"{name}{where} is not a newsbot setting and is ignored{hint}")
    return out
