"""scripts/walkthrough.py runs end to end (tiny budget) and writes its figures and metrics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "walkthrough.py"
FIGURES = [
    "vae_training.png",
    "vae_reconstructions.png",
    "world_model_training.png",
    "world_model_predictions.png",
    "world_model_rollout.png",
    "world_model_horizon_errors.png",
    "rssm_training.png",
    "rssm_predictions.png",
    "rssm_open_loop.png",
    "rssm_horizon_errors.png",
]


def test_walkthrough_tiny_budget(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--budget", "tiny", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in FIGURES:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["budget"] == "tiny"
    wm, rssm = metrics["world_model"], metrics["rssm"]
    for one_step in (wm["one_step"], rssm["one_step"]):
        assert {"observation_mse", "reward_mse", "baseline_observation_mse", "baseline_reward_mse"} <= set(one_step)
        assert all(math.isfinite(v) for v in one_step.values())
    assert rssm["one_step"]["memoryless_reward_mse_bound"] > 0
    assert len(wm["horizon"]["observation_mse"]) == len(wm["horizon"]["horizon"]) == 5
    assert len(rssm["horizon"]["reward_mse"]) == len(rssm["horizon"]["horizon"])
