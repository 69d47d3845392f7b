"""One test question to the configured model: is it reachable, how fast, does it cite, does
it stop at the length cap. ``newsbot doctor`` prints it; the service logs it at start."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from bot.core.answer_model import AnswerGate, SentenceChecker, SourceText, answer_messages
from bot.core.llm import ChatModel, LLMError, StopStreaming
from bot.settings import Settings

log = logging.getLogger(__name__)

# A small made-up article and a question it answers in one cited sentence.
_ARTICLE = SourceText(
    n=1, title="Harbour ferry returns after engine repairs", outlet="newsbot self-test",
    date="2025-04-02",
    body=("The Lindqvist ferry returned to the Harbour Road route on Tuesday after eight weeks "
          "of engine repairs. Captain Mira Osei said the crossing now takes 35 minutes."),
)
_QUESTION = "How long does the Lindqvist ferry crossing take now?"
CAP_TOKENS = 16
# Servers send about one token per delta; a few more than the cap still means it held.
CAP_SLACK = 4
CAP_CHECK_S = 15.0


@dataclass(slots=True)
class ModelCheck:
    """What the test question showed."""

    model: str
    reachable: bool
    error: str | None = None
    status: int | None = None  # the HTTP status of a refusal
    server_said: str = ""  # the server's own words about it
    base_url: str | None = None
    seconds: float | None = None
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    cited: bool = False  # the model cited the article itself (not attributed afterwards)
    answer: str = ""
    cap_honoured: bool | None = None
    cap_tokens: int | None = None  # deltas streamed when asked for at most CAP_TOKENS
    cap_fields: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and self.cited and bool(self.cap_honoured)

    def to_json(self) -> dict[str, object]:
        return asdict(self) | {"ok": self.ok}

    def summary(self) -> str:
        """One line for a log or a terminal."""
        if not self.reachable:
            return f"model {self.model}{self._where()}: {self._failure()}"
        parts = [f"model {self.model}: reachable"]
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.1f} tokens/s")
        if self.first_token_s is not None:
            parts.append(f"first token after {self.first_token_s:.1f} s")
        parts.append("cited its source" if self.cited else "did NOT cite its source")
        if self.cap_honoured is None:
            parts.append(f"length cap not checked ({self.error})")
        else:
            got = (f"{self.cap_tokens} tokens" if self.cap_honoured
                   else f"more than {self.cap_tokens - 1} tokens")
            parts.append(f"length cap {'honoured' if self.cap_honoured else 'NOT honoured'} "
                         f"({got} for a cap of {CAP_TOKENS}, sent as {self.cap_fields})")
        return ", ".join(parts)


    def _where(self) -> str:
        return f" at {self.base_url}" if self.base_url else ""

    def _failure(self) -> str:
        """What went wrong and what to check, in one line."""
        said = f" ({self.server_said})" if self.server_said else ""
        if self.status in (401, 403):
            return (f"the server refused the key with HTTP {self.status}{said}; "
                    "check OPENAI_API_KEY")
        if self.status in (404, 405, 501):
            return (f"the server answered HTTP {self.status}{said} to a chat completion; "
                    "check OPENAI_BASE_URL (the API root, often ending in /v1) and the model "
                    f"name NEWSBOT_LLM_MODEL={self.model}")
        if self.status is not None and self.status < 500:
            return (f"the server refused the request with HTTP {self.status}{said}; "
                    f"check the model name NEWSBOT_LLM_MODEL={self.model}")
        if self.status is not None:
            return f"the server failed with HTTP {self.status}{said}; see the server's log"
        if self.error == "timed out":
            return ("no complete reply within NEWSBOT_ANSWER_BUDGET_S; check that the server at "
                    "OPENAI_BASE_URL is running and not busy")
        return f"not reachable ({self.error}); check OPENAI_BASE_URL and that the server runs"


def check_model(model: ChatModel, settings: Settings) -> ModelCheck:
    """Ask the test question, then ask for a long reply under a small cap."""
    check = ModelCheck(model=model.name, reachable=False,
                       base_url=settings.openai_base_url or "https://api.openai.com/v1")
    gate = AnswerGate(SentenceChecker([_ARTICLE]))
    try:
        done = model.generate(answer_messages(_QUESTION, [_ARTICLE]), on_token=gate.feed,
                              deadline=time.monotonic() + settings.answer_budget_s)
    except LLMError as exc:
        check.error, check.status, check.server_said = exc.reason, exc.status, exc.message
        return check
    gate.finish(complete=done.finish_reason != "length")
    check.reachable = True
    check.seconds = round(done.seconds, 2)
    check.first_token_s = round(done.first_token_s, 2) if done.first_token_s else None
    streaming = done.seconds - (done.first_token_s or 0.0)
    if done.chunks > 1 and streaming > 0:
        check.tokens_per_s = round((done.chunks - 1) / streaming, 1)
    check.cited = any(not k.moved for k in gate.kept)
    check.answer = done.text.strip()[:300]
    deltas = 0

    def count(_: str) -> None:
        nonlocal deltas
        deltas += 1
        if deltas > CAP_TOKENS + CAP_SLACK:
            raise StopStreaming  # the cap did not hold: no need to read on

    try:
        model.generate(
            [("human", "Count from 1 to 300 in words, one number per line, and do not stop.")],
            on_token=count, max_tokens=CAP_TOKENS,
            deadline=time.monotonic() + min(settings.answer_budget_s, CAP_CHECK_S))
    except LLMError as exc:
        check.error = f"cap check: {exc.reason}"
        return check
    check.cap_tokens = deltas
    check.cap_honoured = deltas <= CAP_TOKENS + CAP_SLACK
    fields = str(getattr(model, "fields", "both"))
    check.cap_fields = ("max_tokens and max_completion_tokens" if fields in ("auto", "both")
                        else fields)
    return check


def log_model_check(model: ChatModel | None, settings: Settings) -> ModelCheck | None:
    """Check the model and log the outcome (a warning when something is off)."""
    if model is None:
        log.info("no language model configured: answers are extractive")
        return None
    try:
        check = check_model(model, settings)
    except Exception:
        log.exception("checking the language model failed")
        return None
    (log.info if check.ok else log.warning)("%s", check.summary())
    return check
