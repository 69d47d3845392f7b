"""The Quick start's first command, for real: local MiniLM, sample articles, no .env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NEWSBOT = Path(sys.executable).with_name("newsbot")


@pytest.mark.integration
def test_first_run_answers_the_example_question_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    env.update(NEWSBOT_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([str(NEWSBOT), "ask", "--json"], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["abstained"] and out["mode"] == "extractive"
    assert "building" in out["answer"] and "Buenos Aires" in out["answer"]
    assert "[1]" in out["answer"]
    assert out["sources"][0]["title"].startswith("Netflix")

    # Second run: the sample is not loaded again and the answer is the same.
    again = subprocess.run([str(NEWSBOT), "ask", "--json"], capture_output=True, text=True,
                           timeout=600, env=env, cwd=tmp_path)
    assert json.loads(again.stdout)["answer"] == out["answer"]
    status = subprocess.run([str(NEWSBOT), "status", "--json"], capture_output=True, text=True,
                            timeout=600, env=env, cwd=tmp_path)
    info = json.loads(status.stdout)
    assert info["articles"] == 12 and info["embedding_model"].startswith("minilm")
