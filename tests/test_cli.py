"""The ``ca11`` command end to end on tiny budgets: each subcommand writes what it promises into a temporary folder,
``--set`` reaches the learner, ``--resume`` continues the step count, and bad arguments end with status 2 and a
message naming the argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from ca11_agents import DreamerAgent
from ca11_agents.cli import main
from ca11_agents.experiments import RunConfig, load_run, train_run
from ca11_agents.experiments import runs as runs_module

ENV = "CA11/ContinuousCartPole-v0"
POLICY = {"hidden_dim": 16, "state_dim": 16, "classes": 4, "units": 16, "actor_hidden_dims": [16],
          "critic_hidden_dims": [16], "bins": 31}  # fmt: skip
TINY = ["--steps", "200", "--eval-every", "100", "--eval-episodes", "1", "--no-progress",
        "--set", "learning_starts=60", "--set", "batch_size=4", "--set", "seq_len=8", "--set", "imagination_horizon=5",
        "--set", "imagination_starts=16", "--set", "train.checkpoint_every=100",
        "--set", f"policy_kwargs={json.dumps(POLICY)}"]  # fmt: skip


def ca11(*argv: str) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def dreamer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dreamer"
    assert ca11("train", "dreamer", "--env", ENV, "--out", out, "--set", "gamma=0.95", *TINY) == 0
    return out


def test_train_writes_the_run_folder(dreamer_run: Path) -> None:
    for name in ("config.json", "run.json", "last.zip", "best_model.zip", "replay.npz", "evaluations.npz",
                 "learning_curve.png"):  # fmt: skip
        assert (dreamer_run / name).is_file(), name
    assert list((dreamer_run / "tb").glob("*/events.out.tfevents*")), "no TensorBoard events"
    config = RunConfig.load(dreamer_run / "config.json")
    assert config.env.id == ENV and config.train.steps == 200 and config.hyperparams["gamma"] == 0.95
    state = json.loads((dreamer_run / "run.json").read_text())
    assert state["num_timesteps"] == 200 and state["finished"] and state["versions"]["ca11"]
    with np.load(dreamer_run / "evaluations.npz") as log:
        assert log["timesteps"].tolist() == [0, 100, 200]
    assert imageio.imread(dreamer_run / "learning_curve.png").ndim == 3


def test_set_overrides_reach_the_learner(dreamer_run: Path) -> None:
    agent = DreamerAgent.load(dreamer_run / "last.zip")
    assert agent.gamma == 0.95 and agent.batch_size == 4 and agent.seq_len == 8
    assert agent.policy_kwargs["units"] == 16


def test_resume_continues_the_step_count_and_the_logs(dreamer_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "resumed"
    import shutil

    shutil.copytree(dreamer_run, run)
    assert ca11("train", "--resume", run, "--steps", "300", "--no-progress") == 0
    assert DreamerAgent.load(run / "last.zip").num_timesteps == 300
    with np.load(run / "evaluations.npz") as log:
        assert log["timesteps"].tolist() == [0, 100, 200, 300]  # the earlier evaluations are kept
    assert RunConfig.load(run / "config.json").train.steps == 300
    assert len(list((run / "tb").iterdir())) == 1  # TensorBoard goes on in the same run


def test_ctrl_c_saves_and_resume_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    class Interrupt(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 120:
                raise KeyboardInterrupt
            return True

    original = runs_module._callbacks
    monkeypatch.setattr(runs_module, "_callbacks", lambda *a: [*original(*a), Interrupt()])
    out = tmp_path / "run"
    assert ca11("train", "dreamer", "--env", ENV, "--out", out, *TINY) == 130
    state = json.loads((out / "run.json").read_text())
    assert state["num_timesteps"] == 120 and not state["finished"]
    assert (out / "replay.npz").is_file()
    monkeypatch.setattr(runs_module, "_callbacks", original)
    run = runs_module.resume_run(out)
    assert run.model.num_timesteps == 200 and run.state["finished"]
    assert run.model.replay_buffer.count >= 200  # the saved steps were loaded back, not lost


def test_eval_and_render(dreamer_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "eval.json"
    assert ca11("eval", dreamer_run, "--episodes", "2", "--json", report) == 0
    data = json.loads(report.read_text())
    assert len(data["episodes"]) == 2 and data["env"] == ENV and "return" in capsys.readouterr().out
    video = tmp_path / "agent.gif"
    assert ca11("render", dreamer_run, "--video", video, "--checkpoint", "last") == 0
    frames = imageio.mimread(video)
    assert len(frames) >= 2 and frames[0].shape[2] == 3


def test_render_frame_count_is_steps_plus_one(dreamer_run: Path, tmp_path: Path) -> None:
    from ca11_agents.experiments import render_run

    run = load_run(dreamer_run, "last", "cpu")
    video = tmp_path / "two.mp4"  # every frame kept (a GIF merges identical frames into a longer one)
    episodes = render_run(run, episodes=2, seed=3, video=video)
    frames = imageio.mimread(video, memtest=False)
    assert len(frames) == sum(e["steps"] + 1 for e in episodes) and frames[0].shape == (400, 600, 3)


def test_gif_keeps_the_playing_time(tmp_path: Path) -> None:
    from PIL import Image

    from ca11_agents.experiments import write_video

    frames = [np.full((8, 8, 3), 255 * (i // 3 % 2), np.uint8) for i in range(9)]  # runs of identical frames
    write_video(frames, tmp_path / "v.gif", fps=10)
    with Image.open(tmp_path / "v.gif") as gif:
        total = 0
        for i in range(gif.n_frames):
            gif.seek(i)
            total += gif.info["duration"]
    assert total == pytest.approx(900, abs=10 * gif.n_frames)
    with pytest.raises(ValueError, match="must end in .gif or .mp4"):
        write_video(frames, tmp_path / "v.avi", fps=10)


def test_dream_writes_the_video_and_the_plot(dreamer_run: Path, tmp_path: Path) -> None:
    video, plot = tmp_path / "dream.mp4", tmp_path / "dream.png"
    assert ca11("dream", dreamer_run, "--video", video, "--plot", plot, "--context", "3", "--horizon", "10") == 0
    frames = imageio.mimread(video, memtest=False)
    assert len(frames) == 13 and frames[0].shape[1] == 2 * 600  # real | imagined, one frame per compared step
    assert imageio.imread(plot).ndim == 3


def test_baseline_train_resume_eval(tmp_path: Path) -> None:
    out = tmp_path / "ppo"
    argv = ["--steps", "256", "--eval-every", "128", "--eval-episodes", "1", "--no-progress", "--set", "n_steps=64",
            "--set", "n_envs=2", "--set", "batch_size=32"]  # fmt: skip
    assert ca11("train", "ppo", "--env", "CartPole-v1", "--out", out, *argv) == 0
    assert (out / "last.zip").is_file() and (out / "best_model.zip").is_file()
    assert ca11("train", "--resume", out, "--steps", "512", "--no-progress") == 0
    run = load_run(out, "last")
    assert run.model.num_timesteps == 512 and run.model.n_steps == 64
    assert ca11("eval", out, "--episodes", "1") == 0
    assert ca11("dream", out, "--video", tmp_path / "d.gif") == 2  # a model-free learner has nothing to dream


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "dreamer", "--env", ENV], "--out"),
        (["train", "nonsense", "--out", "{tmp}/x"], "unknown algo 'nonsense'"),
        (["train", "dreamer", "--out", "{tmp}/x", "--set", "gammma=1"], "hyperparams.gammma"),
        (["train", "dreamer", "--out", "{tmp}/x", "--set", "gamma=fast"], "hyperparams.gamma must be a number"),
        (["train", "dreamer", "--out", "{tmp}/x", "--set", "train.stepz=1"], "train.stepz"),
        (["train", "dreamer", "--out", "{tmp}/x", "--steps", "0"], "train.steps must be a positive integer"),
        (["train", "dreamer", "--out", "{tmp}/x", "--preset", "fast"], "unknown preset 'fast'"),
        (["train", "dreamer", "--out", "{tmp}/x", "--set", "actor_grad=x", "--steps", "10"], "actor_grad"),
        (["train", "dreamer", "--out", "{tmp}/x", "--config", "nope"], "--config 'nope'"),
        (["train", "--resume", "{tmp}/missing"], "no config file"),
        (["eval", "{tmp}/missing"], "no config file"),
        (["experiment", "world-model", "--out", "{tmp}/x", "--set", "latent_dimm=3"], "latent_dimm"),
        (["experiment", "rssm", "--out", "{tmp}/x", "--set", "device=gpu0"], "device must be 'auto' or a torch"),
        (["train", "dreamer", "--out", "{tmp}/x", "--env", "NoSuch-v0"], "env.id 'NoSuch-v0'"),
        (["train", "dreamer", "--out", "{tmp}/x", "--set", "env.kwargs.nope=1"], "env.kwargs {'nope': 1}"),
        (["train", "dreamer", "--out", "{tmp}/x", "--device", "gpu0"], "train.device must be 'auto' or a torch"),
        (["train", "dreamer", "--out", "{tmp}/x", "--n-envs", "-3"], "env.n_envs must be a positive integer"),
        (["train", "dqn", "--out", "{tmp}/x"], "sb3_dqn cannot train on CA11/ContinuousPendulum-v0: it needs discrete"),
        (["train", "td3", "--out", "{tmp}/x", "--env", "CartPole-v1"], "it needs continuous (Box) actions"),
        (["train", "dreamer", "--out", "{tmp}/x", "--set", "normalize=true"], "hyperparams.normalize is a baseline's"),
        (["train", "sac", "--out", "{tmp}/x", "--set", "action_noise=0.1"], "unknown key 'hyperparams.action_noise'"),
        (["train", "dreamer", "--out", "{tmp}/file.txt"], "is a file, not a run folder"),
        (["eval", "{tmp}", "--json", "/"], "--json /: Is a directory"),
    ],
)
def test_bad_arguments_exit_2_naming_them(argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (tmp_path / "file.txt").write_text("not a run")
    if "--json" in argv:  # a valid run folder, and an output path that cannot be written
        argv = ["eval", str(_tiny_run(tmp_path / "r")), "--episodes", "1", "--json", "/"]
    assert ca11(*[a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / "config.json").exists()


def _tiny_run(out: Path) -> Path:
    config = RunConfig.from_dict({"env": {"id": ENV}, "train": {"steps": 70, "eval_every": 70, "eval_episodes": 1,
                                  "progress_bar": False},
                                  "hyperparams": {"learning_starts": 60, "batch_size": 4, "seq_len": 8,
                                                  "policy_kwargs": POLICY}})  # fmt: skip
    train_run(config, out)
    return out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["frobnicate"], ["eval"], ["render", "x", "--episodes", "many"], ["experiment", "nope"]):
        with pytest.raises(SystemExit) as exit_info:
            ca11(*argv)
        assert exit_info.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_resume_refuses_to_change_the_run(dreamer_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (dreamer_run / "config.json").read_text()
    assert ca11("train", "--resume", dreamer_run, "--env", "CartPole-v1") == 2
    assert "--env cannot change it" in capsys.readouterr().err
    assert ca11("train", "--resume", dreamer_run, "--eval-every", "10") == 2
    assert "--eval-every cannot change it" in capsys.readouterr().err
    assert ca11("train", "--resume", dreamer_run, "--device", "gpu0") == 2  # checked before config.json changes
    assert "train.device must be" in capsys.readouterr().err
    assert ca11("train", "--resume", dreamer_run, "--steps", "50") == 2
    assert "below the 200 env steps" in capsys.readouterr().err
    assert (dreamer_run / "config.json").read_text() == before
    assert ca11("experiment", "world-model", "--config", "tiny", "--out", dreamer_run) == 2
    assert "already holds a run" in capsys.readouterr().err and (dreamer_run / "config.json").read_text() == before
    assert ca11("train", "dreamer", "--out", dreamer_run) == 2  # an existing run is never overwritten
    assert "already holds a run" in capsys.readouterr().err


def test_every_option_help_shows_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "eval", "render", "dream", "experiment", "export"):
        with pytest.raises(SystemExit) as exit_info:
            ca11(command, "--help")
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "(default:" in text, command
    with pytest.raises(SystemExit):
        ca11("train", "--help")
    text = capsys.readouterr().out
    for field in ("eval_every", "checkpoint_every", "hyperparams", "pendulum, cartpole"):
        assert field in text


@pytest.mark.parametrize(("command", "expected"), [("bench", "--algos"), ("ablate", "--variants"),
                                                   ("sweep", "--trials"), ("play", "ENV_ID")])  # fmt: skip
def test_forwarded_commands_show_their_own_help(command: str, expected: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        ca11(command, "--help")
    assert exit_info.value.code == 0 and expected in capsys.readouterr().out


def test_list_hyperparams_documents_the_learner(capsys: pytest.CaptureFixture[str]) -> None:
    assert ca11("train", "dreamer", "--list-hyperparams") == 0
    text = capsys.readouterr().out
    assert "imagination_horizon (int, default 15): imagined steps per start state" in text


def test_experiment_dreamer_and_python_entry_point(tmp_path: Path) -> None:
    from ca11_agents.experiments import run_dreamer_experiment

    out = tmp_path / "exp"
    config = {"env": {"id": ENV}, "train": {"steps": 120, "eval_every": 60, "eval_episodes": 1, "progress_bar": False},
              "hyperparams": {"learning_starts": 60, "batch_size": 4, "seq_len": 8, "policy_kwargs": POLICY}}
    agent = run_dreamer_experiment(config, out)
    assert isinstance(agent, DreamerAgent) and agent.num_timesteps == 120
    assert RunConfig.load(out / "config.json") == RunConfig.from_dict(config)
    (tmp_path / "c.json").write_text(json.dumps(config))
    assert ca11("experiment", "dreamer", "--config", tmp_path / "c.json", "--set", "train.steps=80",
                "--out", tmp_path / "exp2") == 0  # fmt: skip
    assert load_run(tmp_path / "exp2", "last").model.num_timesteps == 80


def test_experiment_world_model_writes_its_folder(tmp_path: Path) -> None:
    assert ca11("experiment", "world-model", "--config", "tiny", "--out", tmp_path / "wm") == 0
    assert (tmp_path / "wm" / "config.json").is_file() and (tmp_path / "wm" / "metrics.json").is_file()
    assert list((tmp_path / "wm").glob("*.png"))


def test_train_programmatic_matches_cli_config(tmp_path: Path) -> None:
    config = RunConfig.from_dict({"env": {"id": ENV}, "train": {"steps": 70, "eval_every": 70, "eval_episodes": 1,
                                  "progress_bar": False, "save_replay": False},
                                  "hyperparams": {"learning_starts": 60, "batch_size": 4, "seq_len": 8,
                                                  "policy_kwargs": POLICY}})  # fmt: skip
    run = train_run(config, tmp_path / "p")
    assert run.model.num_timesteps == 70 and not (tmp_path / "p" / "replay.npz").exists()


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ca11"
    assert script.is_file(), "pip install -e . installs the ca11 command"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "dream" in done.stdout


def test_export_and_serve_a_run(dreamer_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pytest.importorskip("onnxruntime")
    onnx = tmp_path / "policy.onnx"
    assert ca11("export", dreamer_run, "--onnx", onnx) == 0
    assert onnx.is_file() and onnx.with_suffix(".onnx.json").is_file()
    from ca11_agents.deploy import serve

    calls: list[list[str]] = []
    monkeypatch.setattr(serve, "main", lambda argv: calls.append(argv) or 0)
    assert ca11("serve", dreamer_run, "--checkpoint", "last", "--port", "8123") == 0
    assert calls == [[str(dreamer_run / "last.zip"), "--port", "8123", "--algo", "dreamer"]]


def test_eval_reports_the_checkpoint_identity(dreamer_run: Path, tmp_path: Path) -> None:
    import hashlib

    report = tmp_path / "eval.json"
    assert ca11("eval", dreamer_run, "--episodes", "1", "--checkpoint", "last", "--json", report) == 0
    data = json.loads(report.read_text())
    assert data["checkpoint_sha256"] == hashlib.sha256((dreamer_run / "last.zip").read_bytes()).hexdigest()
    assert data["saved_ca11_version"] == "0.1.0" and len(data["saved_tensors_sha256"]) == 64


def test_an_error_mid_run_saves_and_resume_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    class Fail(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 150:
                raise RuntimeError("boom")
            return True

    original = runs_module._callbacks
    monkeypatch.setattr(runs_module, "_callbacks", lambda *a: [*original(*a), Fail()])
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):  # a bug is shown as itself, after the save
        ca11("train", "dreamer", "--env", ENV, "--out", out, *TINY)
    assert json.loads((out / "run.json").read_text())["num_timesteps"] == 150
    # An evaluation logged after the last save (as after a kill) is dropped on resume, not duplicated.
    with np.load(out / "evaluations.npz") as log:
        stale = {k: np.asarray(log[k]) for k in log.files}
    np.savez(out / "evaluations.npz", timesteps=np.append(stale["timesteps"], 180),
             results=np.vstack([stale["results"], [[1.0]]]), ep_lengths=np.vstack([stale["ep_lengths"], [[1]]]))
    monkeypatch.setattr(runs_module, "_callbacks", original)
    assert runs_module.resume_run(out, progress_bar=False).model.num_timesteps == 200
    with np.load(out / "evaluations.npz") as log:
        assert log["timesteps"].tolist() == [0, 100, 150, 200]  # 180 dropped; the resumed step evaluated


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = _tiny_run(tmp_path / "run")
    (out / "last.zip").unlink()  # as if killed before the first save
    assert ca11("train", "--resume", out, "--no-progress") == 0
    assert "training it from the start" in capsys.readouterr().out
    assert load_run(out, "last").model.num_timesteps == 70
    assert list(out.glob("evaluations.npz.*.old"))  # the first attempt's log is set aside, not deleted


def test_a_config_that_would_import_a_module_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _tiny_run(tmp_path / "run")
    config = json.loads((out / "config.json").read_text())
    config["env"]["id"] = "evil_module:Pendulum-v9"
    (out / "config.json").write_text(json.dumps(config))
    assert ca11("eval", out, "--episodes", "1") == 2
    monkeypatch.setenv("CA11_TRUST_ENV_MODULES", "1")
    assert RunConfig.load(out / "config.json").env.id == "evil_module:Pendulum-v9"


def test_a_bloated_evaluation_log_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "evaluations.npz"
    np.savez_compressed(path, timesteps=np.zeros(10), results=np.zeros((10, 2_000_000)),
                        ep_lengths=np.zeros((10, 2))) # fmt: skip
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ValueError, match="more than 10000000 elements"):
        runs_module.read_evaluations(path)


def test_a_normalised_baseline_keeps_the_statistics_of_each_checkpoint(tmp_path: Path) -> None:
    from ca11_agents.experiments.media import observation_transform

    out = tmp_path / "ppo"
    argv = ["--steps", "256", "--eval-every", "64", "--eval-episodes", "1", "--no-progress", "--set", "n_steps=64",
            "--set", "batch_size=32", "--set", "normalize={\"clip_obs\": 5.0}"]  # fmt: skip
    assert ca11("train", "ppo", "--env", "CartPole-v1", "--out", out, *argv) == 0
    assert (out / "vecnormalize.npz").is_file() and (out / "best_vecnormalize.npz").is_file()
    obs = np.array([3.0, -200.0, 0.1, 50.0], np.float32)
    for checkpoint, name in (("best", "best_vecnormalize.npz"), ("last", "vecnormalize.npz")):
        transform = observation_transform(load_run(out, checkpoint))
        with np.load(out / name) as stats:
            expected = (obs - stats["obs_rms_mean"]) / np.sqrt(stats["obs_rms_var"] + 1e-8)
        np.testing.assert_allclose(transform(obs), np.clip(expected, -5.0, 5.0), rtol=1e-5)
    assert ca11("eval", out, "--episodes", "1") == 0
