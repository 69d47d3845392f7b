"""``newsbot run`` as a subprocess against the local Discord, for end-to-end tests and bench/.

The data dir is prepared once (the bundled sample articles embedded with the real local
model) and copied for every bot, the model files hard-linked rather than copied::

    template = prepare_sample_data(tmp / "template")
    with RunningBot(server, copy_data(template, tmp / "bot")) as bot:
        ...            # the bot is connected and its commands are registered
    bot.log()          # everything it logged
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.support.discord_server import LocalDiscord

NEWSBOT = Path(sys.executable).with_name("newsbot")
SAMPLE = Path(__file__).resolve().parents[2] / "bot" / "sample"
READY_LINE = "connected as"  # what the bot logs in on_ready


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without newsbot, OpenAI or Discord settings, plus ``extra``;
    nothing is downloaded."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def prepare_sample_data(data_dir: Path, *, timeout: float = 600) -> Path:
    """``data_dir`` holding the sample articles, embedded by the real local model."""
    proc = subprocess.run([str(NEWSBOT), "ingest", str(SAMPLE)], capture_output=True,
                          text=True, timeout=timeout, cwd=data_dir.parent,
                          env=clean_env(NEWSBOT_DATA_DIR=str(data_dir)))
    if proc.returncode != 0:
        raise RuntimeError(f"ingesting the sample failed:\n{proc.stderr[-3000:]}")
    return data_dir


def copy_data(template: Path, data_dir: Path) -> Path:
    """A copy of ``template`` for one bot; the model files are hard-linked (read only)."""

    def copy(src: str, dst: str) -> object:
        if Path(src).suffix == ".onnx":
            return os.link(src, dst)
        return shutil.copy2(src, dst)

    shutil.copytree(template, data_dir, copy_function=copy)
    return data_dir


class RunningBot:
    """``newsbot -v run`` connected to ``server``; stopped with SIGINT (as Ctrl-C would)."""

    def __init__(self, server: LocalDiscord, data_dir: Path, *, guild_id: int | None = None,
                 env: dict[str, str] | None = None, start_timeout: float = 120.0) -> None:
        self.server = server
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        settings = {"NEWSBOT_DATA_DIR": str(data_dir), **server.env(),
                    "NEWSBOT_USER_COOLDOWN_S": "0"}
        if guild_id is not None:
            settings["NEWSBOT_DEV_GUILD_ID"] = str(guild_id)
        settings.update(env or {})
        self.env = clean_env(**settings)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None

    def start(self) -> RunningBot:
        began = time.monotonic()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([str(NEWSBOT), "-v", "run"], stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env,
                                         cwd=self.data_dir.parent)
        identifies = self.server.identifies
        try:
            self.server.wait(lambda: self.proc.poll() is not None  # type: ignore[union-attr]
                             or (self.server.identifies > identifies and self.server.connected
                                 and self.readies() >= 1),
                             timeout=self.start_timeout, what="newsbot run to connect")
        except AssertionError:
            self.stop()
            raise AssertionError(f"newsbot run did not connect:\n{self.log()[-4000:]}") from None
        if self.proc.poll() is not None:
            raise AssertionError(f"newsbot run exited {self.proc.returncode}:\n"
                                 f"{self.log()[-4000:]}")
        self.started_in = time.monotonic() - began
        return self

    def readies(self) -> int:
        """How many times on_ready has run (from the log)."""
        return self.log().count(READY_LINE)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def __enter__(self) -> RunningBot:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
