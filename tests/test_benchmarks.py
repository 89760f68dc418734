"""Tests of the benchmark runner (benchmarks/run.py, benchmarks/tasks.py), its algorithm registry and its report
statistics.

The end-to-end test runs a tiny configuration (two algorithms, one env, a few hundred steps) through Ray, then
resumes it without Ray; the statistics are checked on hand-computed examples.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import report, run, tasks
from benchmarks.adapters import choose_policy, policy_for, sb3_kwargs
from benchmarks.algos import ALGOS, AlgorithmUnavailableError, AlgoSpec, Hyperparams, get_algo

ENV_ID = "CA11/ContinuousPendulum-v0"
COLUMNS = ["algo", "env", "seed", "env_steps", "eval_return_mean", "eval_return_std", "wall_s", "device"]


# --------------------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------------------


def test_iqm_drops_the_outer_quartiles() -> None:
    # n divisible by 4: exactly the mean of the middle half (rliable's trim_mean(x, 0.25)), blind to the outlier.
    assert report.iqm([3.0, 1.0, 1000.0, 2.0]) == pytest.approx(2.5)
    assert report.iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    # 3 seeds: sorted values weighted 1/6, 2/3, 1/6.
    assert report.iqm([12.0, 0.0, 3.0]) == pytest.approx(12 / 6 + 3 * 2 / 3)
    assert report.iqm([5.0]) == 5.0
    # Batched along the last axis, as the bootstrap uses it.
    batch = np.array([[1.0, 2.0, 3.0, 1000.0], [0.0, 0.0, 4.0, 4.0]])
    np.testing.assert_allclose(report.iqm(batch, axis=1), [2.5, 2.0])
    with pytest.raises(ValueError, match="empty"):
        report.iqm([])


def test_bootstrap_interval_contains_the_statistic_and_is_reproducible() -> None:
    seeds = np.array([-180.0, -150.0, -900.0])
    low, high = report.bootstrap_ci(seeds, "median")
    assert low <= np.median(seeds) <= high
    assert seeds.min() <= low and high <= seeds.max()
    iqm_low, iqm_high = report.bootstrap_ci(seeds, "iqm")
    assert iqm_low <= report.iqm(seeds) <= iqm_high
    assert report.bootstrap_ci(seeds, "iqm") == (iqm_low, iqm_high)  # fixed generator
    assert report.bootstrap_ci([7.0, 7.0, 7.0], "mean") == (7.0, 7.0)
    with pytest.raises(ValueError, match="unknown statistic"):
        report.bootstrap_ci(seeds, "mode")


def _curve(algo: str, seed: int, returns: list[float], every: int = 1000) -> pd.DataFrame:
    steps = np.arange(len(returns)) * every
    return pd.DataFrame({"algo": algo, "env": ENV_ID, "seed": seed, "env_steps": steps,
                         "eval_return_mean": returns, "eval_return_std": 0.0, "wall_s": steps / 100.0,
                         "device": "cpu"})  # fmt: skip


def test_steps_to_threshold_is_the_first_evaluation_at_or_above_it() -> None:
    curve = _curve("a", 0, [-1000.0, -300.0, -200.0, -450.0, -100.0])
    assert report.first_crossing(curve, -200.0) == (2000.0, 20.0)
    assert report.first_crossing(curve, 0.0) == (math.inf, math.inf)


def test_summary_counts_unreached_seeds_and_takes_ratios_against_sac() -> None:
    results = pd.concat([
        _curve("sb3_sac", 0, [-900.0, -150.0, -140.0]),  # reaches -200 at 1000
        _curve("sb3_sac", 1, [-900.0, -500.0, -190.0]),  # at 2000
        _curve("sb3_sac", 2, [-900.0, -150.0, -150.0]),  # at 1000
        _curve("dreamer", 0, [-900.0, -800.0, -700.0, -100.0], every=500),  # at 1500
        _curve("dreamer", 1, [-900.0, -800.0, -700.0, -600.0], every=500),  # never
        _curve("dreamer", 2, [-900.0, -100.0, -100.0, -100.0], every=500),  # at 500
    ])  # fmt: skip
    table = report.summarize(results, {ENV_ID: -200.0}, baseline="sb3_sac").set_index("algo")
    assert table.loc["sb3_sac", "reached"] == 3 and table.loc["sb3_sac", "steps_to_threshold"] == 1000.0
    # Median of (500, 1500, inf) = 1500: finite because two of three seeds reached the threshold.
    assert table.loc["dreamer", "reached"] == 2 and table.loc["dreamer", "steps_to_threshold"] == 1500.0
    assert table.loc["dreamer", "steps_ratio"] == pytest.approx(1.5)
    assert table.loc["sb3_sac", "steps_ratio"] == pytest.approx(1.0)
    assert table.loc["dreamer", "final_median"] == -100.0
    # Budgets differ (SAC 2,000 steps, dreamer 1,500): both are also compared at the smaller budget, SAC at its
    # last evaluation before it (1,000 steps).
    assert table.loc["sb3_sac", "final_steps"] == 2000 and table.loc["dreamer", "final_steps"] == 1500
    assert (table["common_steps"] == 1500).all()
    assert table.loc["sb3_sac", "common_median"] == -150.0 and table.loc["dreamer", "common_median"] == -100.0
    assert table.loc["sb3_sac", "eval_every"] == 1000 and table.loc["dreamer", "eval_every"] == 500
    # SAC never reaches -120, dreamer does: no ratio rather than a misleading 0.
    table = report.summarize(results, {ENV_ID: -120.0}, baseline="sb3_sac").set_index("algo")
    assert table.loc["sb3_sac", "reached"] == 0 and table.loc["dreamer", "reached"] == 2
    assert math.isnan(table.loc["dreamer", "steps_ratio"])


# --------------------------------------------------------------------------------------------------------------------
# Registry and command-line validation
# --------------------------------------------------------------------------------------------------------------------


def test_registry_names_a_source_for_every_hyperparameter_set() -> None:
    for spec in ALGOS.values():
        assert "default" in spec.hyperparams
        assert all(hp.source for hp in spec.hyperparams.values())
    assert get_algo("sb3_sac").hyperparams_for(ENV_ID).values == {"learning_rate": 1e-3}
    assert "sac.yml" in get_algo("sb3_sac").hyperparams_for("Pendulum-v1").source
    with pytest.raises(ValueError, match="valid names: .*sb3_sac"):
        get_algo("sac")


def test_missing_learner_class_raises_an_error_naming_it() -> None:
    spec = AlgoSpec(name="ghost", target="ca11_agents:NoSuchAgent", adapter="sb3", model_based=True,
                    box_actions_only=False, hyperparams={"default": Hyperparams({}, "none")})
    assert not spec.is_available()
    with pytest.raises(AlgorithmUnavailableError, match="ca11_agents.NoSuchAgent"):
        spec.load_class()


@pytest.mark.parametrize(("text", "seeds"), [("3", [0, 1, 2]), ("4,7", [4, 7]), ("7,", [7])])
def test_seeds_are_a_count_or_an_explicit_list(text: str, seeds: list[int]) -> None:
    assert run.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "x", "1,1", "-1,"])
def test_bad_seeds_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="--seeds"):
        run.parse_seeds(text)


def test_unknown_names_fail_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--algos", "sb3_sac,nope", "--envs", ENV_ID, "--out", str(tmp_path), "--no-ray"]) == 2
    assert "valid names: dreamer" in capsys.readouterr().err
    assert run.main(["--algos", "sb3_sac", "--envs", "Nope-v9", "--out", str(tmp_path), "--no-ray"]) == 2
    assert "CA11/ContinuousPendulum-v0" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_device_auto_follows_the_cluster_and_cuda_needs_a_gpu() -> None:
    assert run.resolve_device("auto", cluster_gpus=0.0) == "cpu"
    assert run.resolve_device("auto", cluster_gpus=1.0) == "cuda"
    assert run.resolve_device("cpu", cluster_gpus=1.0) == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU .* in the Ray cluster"):
        run.resolve_device("cuda", cluster_gpus=0.0)


def test_thresholds_come_from_the_issue_the_spec_or_the_memory_task() -> None:
    assert tasks.env_threshold(ENV_ID) == -200.0
    assert tasks.env_threshold("CA11/ContinuousCartPole-v0") == 475.0
    # memoryless + 0.8 * (optimal - memoryless), read from the env's own attributes.
    import gymnasium as gym

    inner = gym.make("CA11/SequenceEnvironment-v0").unwrapped
    expected = inner.memoryless_return + 0.8 * (inner.optimal_return - inner.memoryless_return)
    assert tasks.env_threshold("CA11/SequenceEnvironment-v0") == pytest.approx(expected)


# --------------------------------------------------------------------------------------------------------------------
# CartPole-v1, Acrobot-v1 and the pixel pendulum
# --------------------------------------------------------------------------------------------------------------------

PIXEL_ID = "CA11/PixelPendulum-v0"


@pytest.mark.parametrize(
    ("env_id", "threshold", "steps", "eval_every"),
    [("CartPole-v1", 475.0, 50_000, 1_000), ("Acrobot-v1", -100.0, 100_000, 2_000), (PIXEL_ID, -200.0, 20_000, 1_000)],
)
def test_new_envs_have_thresholds_and_default_budgets(env_id: str, threshold: float, steps: int,
                                                      eval_every: int) -> None:  # fmt: skip
    assert run.validate_envs(env_id) == [env_id]
    assert tasks.env_threshold(env_id) == threshold
    assert tasks.budget_for(env_id, None, None) == tasks.Budget(steps, eval_every)


def test_discrete_tasks_use_the_cited_zoo_hyperparameters() -> None:
    dqn, ppo = get_algo("sb3_dqn"), get_algo("sb3_ppo")
    cartpole = dqn.hyperparams_for("CartPole-v1")
    assert cartpole.values == {
        "learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000, "gamma": 0.99,
        "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]},
    }  # fmt: skip
    assert "dqn.yml" in cartpole.source and "`CartPole-v1`" in cartpole.source
    acrobot = dqn.hyperparams_for("Acrobot-v1")
    assert acrobot.values == {
        "learning_rate": 6.3e-4, "batch_size": 128, "buffer_size": 50_000, "learning_starts": 0, "gamma": 0.99,
        "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1, "exploration_fraction": 0.12,
        "exploration_final_eps": 0.1, "policy_kwargs": {"net_arch": [256, 256]},
    }  # fmt: skip
    assert "dqn.yml" in acrobot.source and "`Acrobot-v1`" in acrobot.source
    cartpole = ppo.hyperparams_for("CartPole-v1")
    assert cartpole.values == {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98,
                               "n_epochs": 20, "ent_coef": 0.0, "learning_rate": "lin_0.001",
                               "clip_range": "lin_0.2"}  # fmt: skip
    assert "ppo.yml" in cartpole.source and "`CartPole-v1`" in cartpole.source
    acrobot = ppo.hyperparams_for("Acrobot-v1")
    assert acrobot.values == {"normalize": True, "n_envs": 16, "n_steps": 256, "gae_lambda": 0.94, "gamma": 0.99,
                              "n_epochs": 4, "ent_coef": 0.0}  # fmt: skip
    assert "ppo.yml" in acrobot.source and "`Acrobot-v1`" in acrobot.source
    # The zoo's normalize: VecNormalize with the algorithm's gamma; the policy is left to the adapter.
    settings = sb3_kwargs(acrobot.values, action_dim=1)
    assert settings.normalize == {"gamma": 0.99} and settings.n_envs == 16 and settings.policy is None
    assert "normalize" not in settings.kwargs and settings.kwargs["n_steps"] == 256
    assert sb3_kwargs(cartpole.values, action_dim=1).normalize is None


def test_pixel_pendulum_sac_uses_the_zoo_learning_rate_and_a_buffer_that_fits() -> None:
    sac = get_algo("sb3_sac").hyperparams_for(PIXEL_ID)
    assert sac.values == {"learning_rate": 1e-3, "buffer_size": 100_000, "optimize_memory_usage": False}
    assert "sac.yml" in sac.source and "`Pendulum-v1`" in sac.source
    assert get_algo("sb3_td3").hyperparams_for(PIXEL_ID).values["buffer_size"] == 100_000


def test_pixel_pendulum_id_makes_64x64_rgb_observations_with_action_repeat_2() -> None:
    import gymnasium as gym

    tasks.import_env_packages()
    env = gym.make(PIXEL_ID)
    try:
        assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (1,)
        assert env.spec.max_episode_steps == 100  # agent steps: 200 physics steps at action repeat 2
        obs, _ = env.reset(seed=0)
        assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
        obs, reward, *_ = env.step(np.array([0.5], dtype=np.float32))
        assert env.observation_space.contains(obs)
    finally:
        env.close()
    # One agent step is two physics steps of the state pendulum, rewards summed.
    state = gym.make("CA11/ContinuousPendulum-v0")
    state.reset(seed=0)
    expected = sum(state.step(np.array([0.5], dtype=np.float32))[1] for _ in range(2))
    state.close()
    assert reward == pytest.approx(expected)


def test_policy_follows_the_observation_space_unless_named() -> None:
    import gymnasium as gym
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import DQN, PPO, SAC

    image = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    vector = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    mixed = gym.spaces.Dict({"pixels": image, "state": vector})
    for cls in (SAC, PPO, DQN):
        assert choose_policy(cls, image) == "CnnPolicy"
        assert choose_policy(cls, mixed) == "MultiInputPolicy"
        assert choose_policy(cls, vector) == "MlpPolicy"
    assert choose_policy(RecurrentPPO, image) == "CnnLstmPolicy"
    assert choose_policy(RecurrentPPO, mixed) == "MultiInputLstmPolicy"
    assert choose_policy(SAC, image, named="MlpPolicy") == "MlpPolicy"  # named in the hyperparameters: kept
    tasks.import_env_packages()
    assert policy_for(get_algo("sb3_sac"), PIXEL_ID) == "CnnPolicy"
    assert policy_for(get_algo("recurrent_ppo"), PIXEL_ID) == "CnnLstmPolicy"
    assert policy_for(get_algo("recurrent_ppo"), "CartPole-v1") == "MlpLstmPolicy"  # named by its zoo entry
    assert policy_for(get_algo("sb3_dqn"), "CartPole-v1") == "MlpPolicy"


def test_planning_skips_learners_that_cannot_act_or_see(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks.import_env_packages()
    specs = [get_algo(name) for name in ("sb3_dqn", "sb3_sac", "sb3_td3", "tianshou_sac", "sb3_ppo")]
    envs = ["CartPole-v1", PIXEL_ID]
    budgets = {env_id: tasks.Budget(10, 5) for env_id in envs}
    planned, skipped = run.plan_tasks(specs, envs, [0], budgets, 1, "cpu", 1, tmp_path)
    assert skipped == 0
    assert {(task.algo, task.env_id) for task in planned} == {
        ("sb3_dqn", "CartPole-v1"), ("sb3_ppo", "CartPole-v1"),
        ("sb3_sac", PIXEL_ID), ("sb3_td3", PIXEL_ID), ("sb3_ppo", PIXEL_ID),
    }  # fmt: skip
    out = capsys.readouterr().out
    assert "skipping sb3_sac on CartPole-v1: it needs continuous (Box) actions" in out
    assert "skipping sb3_dqn on CA11/PixelPendulum-v0: it needs discrete actions" in out
    assert "skipping tianshou_sac on CA11/PixelPendulum-v0: its adapter handles only flat vector" in out


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        # The zoo's Acrobot entry with a tiny rollout: exercises VecNormalize and its synced evaluation env.
        ("Acrobot-v1", {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1}),
        # CnnPolicy on the registered pixel id, through make_vec_env and SB3's image transposition.
        (PIXEL_ID, {"n_steps": 16, "batch_size": 16, "n_epochs": 1}),
    ],
)
def test_tiny_ppo_runs_on_the_new_envs(env_id: str, overrides: dict[str, int]) -> None:
    from benchmarks.adapters import EvalClock, RunConfig, train
    from benchmarks.algos import variant_spec

    tasks.import_env_packages()
    spec = variant_spec("ppo-tiny", "sb3_ppo", overrides)
    evaluations = []
    train(spec, RunConfig(env_id, 0, 32, 32, 1, "cpu"), EvalClock(evaluations.append))
    assert [e.env_steps for e in evaluations] == [0, 32]
    assert all(np.isfinite(e.return_mean) for e in evaluations)


def test_an_interrupted_curve_is_kept_as_partial(tmp_path: Path) -> None:
    task = run.RunTask("sb3_sac", ENV_ID, 0, 100, 10, 1, "cpu", 1)
    rows = _curve("sb3_sac", 0, [-1.0, -2.0, -3.0]).to_dict("records")
    curve, partial = tmp_path / f"{task.stem}.csv", tmp_path / f"{task.stem}.partial.csv"
    curve.write_text(run.rows_to_csv(rows))
    run.keep_partial_curve(tmp_path, task)
    assert not curve.exists() and len(pd.read_csv(partial)) == 3
    # Interrupted again, earlier: the longer curve stays.
    curve.write_text(run.rows_to_csv(rows[:1]))
    run.keep_partial_curve(tmp_path, task)
    assert not curve.exists() and len(pd.read_csv(partial)) == 3


# --------------------------------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------------------------------


def _mtimes(runs_dir: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in runs_dir.iterdir()}


def test_tiny_benchmark_writes_results_summary_and_curves_then_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--algos", "sb3_sac,sb3_td3", "--envs", ENV_ID, "--seeds", "1", "--steps", "300", "--eval-every", "150",
            "--eval-episodes", "2", "--out", str(tmp_path)]  # fmt: skip
    assert run.main([*args, "--num-cpus", "2"]) == 0  # through a local Ray instance, both runs in parallel
    first = capsys.readouterr().out
    assert first.count("final return") == 2

    with (tmp_path / "results.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    for algo in ("sb3_sac", "sb3_td3"):
        curve = [row for row in rows if row["algo"] == algo]
        assert [int(row["env_steps"]) for row in curve][:2] == [0, 150]  # step 0, then every 150 steps
        assert int(curve[-1]["env_steps"]) >= 300
        assert all(row["env"] == ENV_ID and row["device"] == "cpu" for row in curve)
        assert all(np.isfinite(float(row["eval_return_mean"])) for row in curve)
    summary = (tmp_path / "summary.md").read_text()
    assert f"## {ENV_ID}" in summary and "Threshold: -200.0" in summary
    assert "| sb3_sac | model-free |" in summary and "| sb3_td3 | model-free |" in summary
    assert "steps ratio vs sb3_sac" in summary and "Device(s): cpu" in summary
    assert "| budget (eval every) |" in summary and "| median at 300 steps |" in summary
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Everything finished: a second invocation reruns nothing and leaves the run files untouched.
    runs_dir = tmp_path / "runs"
    before = _mtimes(runs_dir)
    assert run.main([*args, "--no-ray"]) == 0
    assert "0 run(s) to do, 2 already finished" in capsys.readouterr().out
    assert _mtimes(runs_dir) == before

    # Simulate an interrupted TD3 run: only that one is redone.
    td3 = run.RunTask("sb3_td3", ENV_ID, 0, 300, 150, 2, "cpu", 1)
    (runs_dir / f"{td3.stem}.json").unlink()
    assert run.main([*args, "--no-ray", "--no-report"]) == 0
    assert "1 run(s) to do, 1 already finished" in capsys.readouterr().out
    marker = json.loads((runs_dir / f"{td3.stem}.json").read_text())
    assert marker["complete"] and marker["versions"]["torch"] == importlib.metadata.version("torch")  # the build too
    sac_files = [name for name in before if name.startswith("sb3_sac")]
    assert {name: _mtimes(runs_dir)[name] for name in sac_files} == {name: before[name] for name in sac_files}
    assert not (runs_dir / f"{td3.stem}.partial.csv").exists()  # superseded by the finished curve

    # The report can be rebuilt on its own.
    (tmp_path / "summary.md").unlink()
    assert report.main([str(tmp_path)]) == 0
    assert (tmp_path / "summary.md").exists()


def test_update_cost_times_variants_and_names_bad_ones():
    import argparse

    from benchmarks import update_cost

    assert update_cost.parse_variant('small={"batch_size": 4}') == ("small", {"batch_size": 4})
    for bad in ("nojson", "x={oops", "x=[1]"):
        with pytest.raises(argparse.ArgumentTypeError, match="variant"):
            update_cost.parse_variant(bad)
    tiny = {"batch_size": 2, "seq_len": 4, "imagination_horizon": 3, "imagination_starts": 4}
    seconds = update_cost.time_updates("CA11/ContinuousPendulum-v0", tiny, fill=20, updates=3)
    assert math.isfinite(seconds) and seconds > 0.0


def test_update_cost_counts_operator_calls_and_env_steps_per_second(capsys):
    from benchmarks import update_cost

    tiny = {"batch_size": 2, "seq_len": 4, "imagination_horizon": 3, "imagination_starts": 4}
    agent = update_cost.build("CA11/ContinuousPendulum-v0", tiny, fill=20)
    assert update_cost.count_ops(agent, updates=1) > 100  # an update is hundreds of aten calls at least
    before = agent.num_timesteps
    assert update_cost.time_learning(agent, 10) > 0.0 and agent.num_timesteps == before + 10
    assert agent._n_updates > 20  # it trained on its schedule (20 warm-up updates, then more)
    update_cost.main(["--env", "CA11/ContinuousPendulum-v0", "--fill", "40", "--updates", "1", "--repeats", "1",
                      "--learn-steps", "4", "--variant", f"tiny={json.dumps(tiny)}"])  # fmt: skip
    out = capsys.readouterr().out
    assert "aten calls per update" in out and "env steps/s in learn()" in out and "tiny" in out


@pytest.mark.parametrize("algo", ["world_model_agent", "rssm_agent"])
def test_update_cost_times_a_planners_updates_and_actions(algo):
    from benchmarks import update_cost

    tiny = {"batch_size": 2, "seq_len": 4, "horizon": 2, "planner_kwargs": {"candidates": 4, "elites": 2}}
    assert update_cost.time_updates("CA11/ContinuousPendulum-v0", tiny, fill=20, updates=2, algo=algo) > 0.0
    assert update_cost.time_actions("CA11/ContinuousPendulum-v0", tiny, fill=20, actions=3, algo=algo) > 0.0


@pytest.mark.slow
def test_the_device_check_runs_end_to_end_on_the_cpu_path(tmp_path, capsys):
    """The GPU script, ready for a GPU machine: its CPU path with tiny budgets writes every file it promises."""
    from benchmarks import device_check

    device_check.main(["--device", "cpu", "--out", str(tmp_path), "--quick", "--compile-mode", ""])
    meta = json.loads((tmp_path / "device_check.json").read_text())
    assert meta["device"] == "cpu" and set(meta["wall_s"]) == {"update_cost", "pendulum_run"}
    table = (tmp_path / "update_cost.txt").read_text()
    assert "default" in table and "gpu_preset" in table and "ms per update" in table
    assert (tmp_path / "run" / "summary.md").exists()


def test_compiled_update_swaps_the_two_loops_only_while_it_lasts(monkeypatch):
    import ca11_agents.dreamer.dreamer as dreamer_module
    from benchmarks import update_cost

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: compiled.append(mode) or fn)
    tiny = {"batch_size": 2, "seq_len": 4, "imagination_horizon": 3, "imagination_starts": 4}
    agent = update_cost.build("CA11/ContinuousPendulum-v0", tiny, fill=20)
    original = dreamer_module.imagine
    with update_cost.compiled_update(agent, "reduce-overhead") as seconds:
        assert "loss_terms" in vars(agent.policy.rssm) and seconds > 0.0
    assert compiled == ["reduce-overhead"] * 2
    assert dreamer_module.imagine is original and "loss_terms" not in vars(agent.policy.rssm)


def test_serve_load_measures_both_backends_and_checks_every_action(tmp_path):
    """The server's load benchmark on tiny budgets: latency rows per backend and concurrency, a soak with memory
    figures, no errors (every served action equals the offline predict)."""
    pytest.importorskip("fastapi", reason="needs the deploy extra")
    pytest.importorskip("onnxruntime", reason="needs the deploy extra")
    from benchmarks import serve_load

    serve_load.main(["--out", str(tmp_path), "--requests", "40", "--concurrency", "1,4", "--soak", "80"])
    results = json.loads((tmp_path / "serve_load.json").read_text())
    rows = {(r["backend"], r["sessions"]): r for r in results["rows"]}
    assert set(rows) == {("torch", 1), ("torch", 4), ("onnx", 1), ("onnx", 4)}
    assert all(r["errors"] == 0 and r["requests"] == 40 and r["p99_ms"] >= r["p50_ms"] > 0 for r in rows.values())
    soak = results["soak"]
    assert soak["errors"] == 0 and soak["requests"] == 80 and soak["rss_after_mb"] > 0
