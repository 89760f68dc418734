"""The environment speed benchmark runs end to end and reports every environment (no timing assertions: speed
depends on the machine; benchmarks/README.md holds measured figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ca11_gym
from benchmarks import env_speed


def test_env_speed_reports_every_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "speed.json"
    assert env_speed.main(["--steps", "200", "--num-envs", "8", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(row["mode"], row["env_id"]): row for row in report["results"]}
    assert set(rows) == {(mode, env_id) for mode in ("single", "vector") for env_id in ca11_gym.ENV_IDS}
    assert all(row["steps_per_s"] > 0 for row in rows.values())
    for mode in ("single", "vector"):
        for env_id in ("CA11/ContinuousCartPole-v0", "CA11/ContinuousPendulum-v0"):
            row = rows[(mode, env_id)]
            assert row["ratio"] == pytest.approx(row["steps_per_s"] / row["counterpart_steps_per_s"])
    assert rows[("vector", "CA11/ContinuousCartPole-v0")]["counterpart"] == "CartPole-v1 (CartPoleVectorEnv)"
    assert report["table"] in capsys.readouterr().out


def test_env_speed_rejects_non_positive_sizes() -> None:
    with pytest.raises(SystemExit) as error:
        env_speed.main(["--num-envs", "0"])
    assert error.value.code == 2
