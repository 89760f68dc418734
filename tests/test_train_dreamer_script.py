"""The README's main job, `scripts/train_dreamer.py`, end to end with a tiny budget."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio

from ca11_agents import DreamerAgent

ROOT = Path(__file__).resolve().parents[1]


def test_train_dreamer_writes_agent_curve_gif_and_summary(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "train_dreamer.py"), "--steps", "300", "--eval-every", "150",
           "--eval-episodes", "1", "--no-progress", "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 300 and summary["eval_steps"] == [150, 300]
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    assert len(imageio.mimread(tmp_path / "dreamer.gif")) > 50
    assert DreamerAgent.load(tmp_path / "dreamer.zip").num_timesteps == 300


def test_train_dreamer_rejects_bad_arguments(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "train_dreamer.py"), "--steps", "0", "--out", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--steps" in result.stderr
