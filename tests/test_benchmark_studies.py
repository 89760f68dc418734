"""The issue-#15 studies run end to end on tiny budgets: calibration and adaptation write their tables."""

from __future__ import annotations

import json

import pytest

from benchmarks import adaptation, calibration


def test_calibration_study_writes_its_table(tmp_path):
    assert calibration.main(["--envs", "CA11/ContinuousPendulum-v0", "--variants", "gaussian x1,deterministic x5",
                             "--seeds", "1", "--preset", "tiny", "--out", str(tmp_path)]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "calibration.json").read_text())
    assert [r["variant"] for r in rows] == ["gaussian x1", "deterministic x5"]
    assert set(rows[0]["calibration"]) == {"members", "ensemble"} and set(rows[1]["calibration"]) == {"ensemble"}
    assert all(0.0 <= f <= 1.0 for r in rows for c in r["calibration"].values() for f in c.values())
    table = (tmp_path / "calibration.md").read_text()
    assert "python -m benchmarks.calibration" in table and "| gaussian x1 (seeds 1) |" in table
    with pytest.raises(SystemExit):
        calibration.main(["--variants", "gaussian x9", "--out", str(tmp_path)])


@pytest.mark.slow
def test_adaptation_study_compares_scratch_fine_tuned_and_fresh_replay(tmp_path):
    assert adaptation.main(["--change", "mass=1.3,length=0.9", "--seeds", "1", "--pretrain-steps", "20", "--steps",
                            "20", "--eval-every", "10", "--eval-episodes", "1", "--out", str(tmp_path)]) == 0  # fmt: skip
    result = json.loads((tmp_path / "adaptation.json").read_text())
    assert result["change"] == {"mass": 1.3, "length": 0.9} and result["threshold"] == -200
    (run,) = result["runs"]
    steps = [[step for step, *_ in run[arm]] for arm in adaptation.ARMS]
    assert steps == [[0, 10, 20]] * 3
    # Both pre-trained arms start from the same saved networks: the same zero-shot evaluation.
    assert run["fine_tuned"][0] == run["fresh_replay"][0]
    text = (tmp_path / "adaptation.md").read_text()
    assert "| fine-tuned |" in text and "| fresh-replay |" in text


def test_learn_curve_restarts_the_step_count_only_when_asked():
    class Recorder:
        def __init__(self):
            self.calls = []

        def learn(self, steps, reset_num_timesteps):
            self.calls.append((steps, reset_num_timesteps))

    for restart, first in ((False, False), (True, True)):
        agent = Recorder()
        curve = adaptation.learn_curve(agent, 30, 10, lambda a: (-1.0, 0.0), restart=restart)
        assert [step for step, *_ in curve] == [0, 10, 20, 30]
        assert agent.calls == [(10, first), (10, False), (10, False)]


def test_adaptation_arms_are_chosen_and_checked(tmp_path):
    assert adaptation.main(["--arms", "scratch", "--seeds", "1", "--steps", "10", "--eval-every", "10",
                            "--eval-episodes", "1", "--out", str(tmp_path)]) == 0  # fmt: skip
    (run,) = json.loads((tmp_path / "adaptation.json").read_text())["runs"]
    assert set(run) == {"seed", "scratch", "scratch_wall_s"}
    with pytest.raises(SystemExit):
        adaptation.main(["--arms", "scratch,warm", "--out", str(tmp_path)])


def test_adaptation_changes_are_parsed_and_checked():
    assert adaptation.parse_change("mass=1.3, length=0.8") == {"mass": 1.3, "length": 0.8}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        adaptation.parse_change("mass")
    assert adaptation.steps_to([(0, -900.0, 1.0), (250, -190.0, 1.0), (500, -150.0, 1.0)], -200) == 250
    assert adaptation.steps_to([(0, -900.0, 1.0)], -200) is None
