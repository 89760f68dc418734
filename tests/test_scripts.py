"""The experiment scripts end to end with tiny budgets: ablation (benchmarks/ablation.py: ca11 ablate), sweep (benchmarks/sweep.py: ca11 sweep),
recording (scripts/record_video.py) and probing (scripts/probe_agent.py), plus the benchmark's algorithm variants
they are built on.

Runs go sequentially in-process (``--no-ray``); the runner's own tests cover Ray.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import imageio.v3 as iio
import optuna
import pandas as pd
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import ca11_gym  # noqa: F401  (registers the CA11 ids)
from benchmarks.algos import ALGOS, get_algo, merge_hyperparams, register_variant, variant_spec
from ca11_agents import DreamerAgent, RSSMAgent

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "CA11/ContinuousPendulum-v0"
POLICY = {"hidden_dim": 16, "state_dim": 16, "classes": 4, "units": 16, "actor_hidden_dims": [16],
          "critic_hidden_dims": [16], "bins": 31}  # fmt: skip
TINY = {"learning_starts": 50, "batch_size": 4, "seq_len": 8, "imagination_horizon": 5, "imagination_starts": 16,
        "train_freq": 4, "policy_kwargs": POLICY}  # fmt: skip
BUDGET = ["--seeds", "1", "--steps", "200", "--eval-every", "100", "--eval-episodes", "1"]


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"ca11_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def restore_registry() -> Iterator[None]:
    """Variants registered by a test do not leak into other tests' ``ALGOS`` (the runner's default suite)."""
    saved = dict(ALGOS)
    yield
    ALGOS.clear()
    ALGOS.update(saved)


@pytest.fixture(scope="module")
def ablation() -> ModuleType:
    return importlib.import_module("benchmarks.ablation")


@pytest.fixture(scope="module")
def sweep() -> ModuleType:
    return importlib.import_module("benchmarks.sweep")


# --------------------------------------------------------------------------------------------------------------------
# Variants in the benchmark registry
# --------------------------------------------------------------------------------------------------------------------


def test_overrides_merge_into_policy_kwargs_instead_of_replacing_them() -> None:
    merged = merge_hyperparams({"batch_size": 8, "policy_kwargs": {"units": 16, "unimix": 0.01}},
                               {"policy_kwargs": {"unimix": 0.0}, "critic_tau": 1.0})  # fmt: skip
    assert merged == {"batch_size": 8, "policy_kwargs": {"units": 16, "unimix": 0.0}, "critic_tau": 1.0}
    spec = variant_spec("dreamer-test", "dreamer", {"policy_kwargs": {"symlog_obs": False}})
    assert spec.name == "dreamer-test" and spec.target == get_algo("dreamer").target and spec.model_based
    assert spec.hyperparams_for(ENV_ID).values["policy_kwargs"] == {"symlog_obs": False}
    assert "symlog_obs" in spec.hyperparams_for(ENV_ID).source
    assert "dreamer-test" not in ALGOS  # variant_spec does not register


def test_variant_names_are_checked_and_builtins_are_never_replaced() -> None:
    with pytest.raises(ValueError, match="built-in"):
        register_variant("sb3_sac", "dreamer", {})
    for bad in ("a__b", "a/b", ""):
        with pytest.raises(ValueError, match="variant name"):
            variant_spec(bad, "dreamer", {})
    with pytest.raises(ValueError, match="unknown algorithm"):
        variant_spec("x", "nope", {})
    assert get_algo("sb3_sac").hyperparams_for(ENV_ID).values == {"learning_rate": 1e-3}


# --------------------------------------------------------------------------------------------------------------------
# Ablation
# --------------------------------------------------------------------------------------------------------------------


def test_each_ablation_variant_builds_an_agent_without_its_ingredient(ablation: ModuleType) -> None:
    variants = ablation.parse_variants("all")
    assert [v.name for v in variants][0] == "full" and len(variants) == 12
    ablation.register(variants, TINY)
    agents = {}
    for variant in variants:
        kwargs = get_algo(variant.algo).hyperparams_for(ENV_ID).values
        assert {k: v for k, v in kwargs["policy_kwargs"].items() if k in POLICY} == POLICY  # sizes kept
        assert variant.removes and variant.motivation
        agents[variant.name] = DreamerAgent("MlpPolicy", ENV_ID, seed=0, device="cpu", **kwargs)
    full = agents["full"]
    assert full.normalize_returns and full.critic_tau < 1.0 and full.policy_kwargs == POLICY
    assert agents["no_categorical"].policy_kwargs["latent"] == "gaussian"
    assert agents["no_symlog"].policy_kwargs["symlog_obs"] is False
    assert agents["no_unimix"].policy_kwargs["unimix"] == 0.0
    assert agents["no_free_bits"].policy_kwargs["free_bits"] == 0.0
    assert agents["no_return_norm"].normalize_returns is False
    assert agents["no_slow_critic"].critic_tau == 1.0
    v3 = agents["v3_actor_critic"]
    assert (v3.actor_grad, v3.gamma, v3.replay_value_coef, v3.mc_value_coef) == ("reinforce", 0.997, 0.3, 0.0)
    assert full.actor_grad == "dynamics" and full.replay_value_coef == 0.0 and full.mc_value_coef > 0.0
    assert agents["no_mc_value"].mc_value_coef == 0.0
    # The advanced world models (issue #15): options of the same RSSM.
    rssm = {name: agents[name].policy.rssm for name in ("transformer", "contrastive", "redundancy")}
    assert type(rssm["transformer"].gru).__name__ == "TransformerCore" and rssm["transformer"].deter_dim > 16
    assert type(rssm["contrastive"].decoder).__name__ == "ContrastiveRepresentation"
    assert type(rssm["redundancy"].decoder).__name__ == "RedundancyReduction"
    # Removing an ingredient changes nothing else: one key of the full agent's arguments differs.
    for name in ("no_return_norm", "no_slow_critic", "no_mc_value"):
        init, reference = agents[name]._init_kwargs(), full._init_kwargs()
        assert sum(init[k] != reference[k] for k in init) == 1, name


@pytest.mark.parametrize("learner", ["world_model_agent", "rssm_agent"])
def test_planner_ablation_variants_change_one_ingredient(ablation: ModuleType, learner: str) -> None:
    from ca11_agents import RSSMAgent, WorldModelAgent

    variants = ablation.parse_variants("all", learner)
    assert variants[0].name == "full" and all(v.algo.startswith(("wm-", "rssm-")) for v in variants)
    ablation.register(variants, {})
    cls = WorldModelAgent if learner == "world_model_agent" else RSSMAgent
    agents = {v.name: cls("MlpPolicy", ENV_ID, seed=0, device="cpu", **get_algo(v.algo).hyperparams_for(ENV_ID).values)
              for v in variants}  # fmt: skip
    reference = agents["full"]._init_kwargs()
    for name, agent in agents.items():
        init = agent._init_kwargs()
        assert sum(init[k] != reference[k] for k in init) == (name != "full"), name
    if learner == "world_model_agent":
        assert agents["no_ensemble"].policy.world_model.dynamics.ensemble_size == 1
        assert agents["deterministic"].policy.world_model.dynamics.stochastic is False
    assert agents["full"].policy.critic is not None and agents["no_terminal_value"].policy.critic is None
    if learner == "world_model_agent":  # its value: the lambda-return along the plan, with the Monte-Carlo loss
        assert agents["full"].plan_lambda < 1.0 and agents["last_value_only"].plan_lambda == 1.0
        assert agents["full"].mc_value_coef > 0.0 and agents["no_mc_value"].mc_value_coef == 0.0
    with pytest.raises(ValueError, match="unknown learner"):
        ablation.parse_variants("all", "sb3_sac")


def test_ablation_writes_the_runner_outputs_and_resumes(
    ablation: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--variants", "full,no_symlog", *BUDGET, "--hparams", json.dumps(TINY), "--out", str(tmp_path), "--no-ray"]
    assert ablation.main(args) == 0
    assert capsys.readouterr().out.count("final return") == 2

    results = pd.read_csv(tmp_path / "results.csv")
    assert set(results["algo"]) == {"dreamer-full", "dreamer-no_symlog"}
    for _, curve in results.groupby("algo"):
        assert list(curve["env_steps"]) == [0, 100, 200] and (curve["env"] == ENV_ID).all()
    marker = json.loads((tmp_path / "runs" / f"dreamer-no_symlog__{ENV_ID.replace('/', '-')}__0.json").read_text())
    assert "'symlog_obs': False" in marker["hyperparams"]["policy_kwargs"]
    assert "'hidden_dim': 16" in marker["hyperparams"]["policy_kwargs"]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# Ablation summary") and "Threshold: -200.0" in summary
    assert "steps ratio vs dreamer-full" in summary and "| dreamer-no_symlog | model-based | 1 |" in summary
    assert "## Variants" in summary and "'Robust predictions'" in summary
    assert "dreamer-no_free_bits" not in summary  # only the variants that ran are described
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Same command again: nothing reruns. Other --hparams: the finished runs are kept, with a note.
    assert ablation.main(args) == 0
    assert "0 run(s) to do, 2 already finished" in capsys.readouterr().out
    args[args.index("--hparams") + 1] = json.dumps({**TINY, "train_freq": 8})
    assert ablation.main(args) == 0
    assert capsys.readouterr().out.count("trained with other hyperparameters") == 2


def test_ablation_rejects_unknown_variants(
    ablation: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ablation.main(["--variants", "full,no_magic", "--out", str(tmp_path), "--no-ray"]) == 2
    assert "valid: all, full, no_categorical" in capsys.readouterr().err
    assert ablation.main(["--hparams", "[1]", "--out", str(tmp_path), "--no-ray"]) == 2
    assert "JSON object" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------------------------------------
# Sweep
# --------------------------------------------------------------------------------------------------------------------


def test_sweep_persists_the_study_writes_the_best_params_and_resumes(
    sweep: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixed = {k: v for k, v in TINY.items() if k not in ("train_freq",)}  # train_freq, lrs and gamma are searched
    args = [*BUDGET, "--hparams", json.dumps(fixed), "--out", str(tmp_path)]
    assert sweep.main(["--trials", "2", *args]) == 0
    assert "best trial" in capsys.readouterr().out

    study = optuna.load_study(study_name=f"dreamer-{ENV_ID}", storage=f"sqlite:///{tmp_path / 'study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    assert set(trials[0].params) == set(sweep.SEARCH_SPACE) - set(fixed)
    assert trials[0].user_attrs["curves"]["0"][-1][0] == 200  # the curve reaches the budget
    best = json.loads((tmp_path / "best_params.json").read_text())
    assert best["value"] == max(t.value for t in trials) and best["objective"] == "auc"
    curve = best["user_attrs"]["curves"]["0"]  # [[env_steps, mean return], ...] at 0, 100, 200
    assert best["value"] == pytest.approx((curve[1][1] + curve[2][1]) / 2, abs=0.01)  # step 0 left out
    assert best["params"] == study.best_params
    assert best["agent_kwargs"] == merge_hyperparams(fixed, best["params"])  # ready for DreamerAgent(**...)
    assert best["algo"] == "dreamer"
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 2

    # Resume: one more trial to reach 3; other settings are refused rather than mixed into the study.
    assert sweep.main(["--trials", "3", *args]) == 0
    assert "2 trial(s) finished, 1 to run" in capsys.readouterr().out
    assert len(optuna.load_study(study_name=study.study_name, storage=study._storage).trials) == 3
    args[args.index("--steps") + 1] = "300"
    assert sweep.main(["--trials", "3", *args]) == 2
    assert "was run with" in capsys.readouterr().err


def test_sweep_on_ray_tune_writes_into_the_same_study(sweep: ModuleType, tmp_path: Path) -> None:
    args = ["--trials", "1", *BUDGET, "--hparams", json.dumps(TINY), "--out", str(tmp_path)]
    assert sweep.main([*args, "--backend", "ray", "--num-cpus", "1"]) == 0
    study = optuna.load_study(study_name=f"dreamer-{ENV_ID}", storage=f"sqlite:///{tmp_path / 'study.db'}")
    [trial] = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))  # sampled by Ray's OptunaSearch
    assert set(trial.params) == set(sweep.SEARCH_SPACE) - set(TINY)
    assert json.loads((tmp_path / "best_params.json").read_text())["value"] == trial.value


def test_sweep_tunes_a_planner(sweep: ModuleType, tmp_path: Path) -> None:
    tiny = {"learning_starts": 50, "batch_size": 4, "seq_len": 4, "gradient_steps": 1, "horizon": 3,
            "planner_kwargs": {"candidates": 8, "elites": 2, "iterations": 2}}  # fmt: skip
    args = ["--algo", "world_model_agent", "--trials", "1", *BUDGET, "--hparams", json.dumps(tiny)]
    assert sweep.main([*args, "--out", str(tmp_path)]) == 0
    study = optuna.load_study(study_name=f"world_model_agent-{ENV_ID}", storage=f"sqlite:///{tmp_path / 'study.db'}")
    [trial] = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert set(trial.params) == set(sweep.SEARCH_SPACES["world_model_agent"]) - set(tiny)
    best = json.loads((tmp_path / "best_params.json").read_text())
    assert best["algo"] == "world_model_agent" and best["agent_kwargs"]["horizon"] == 3


def test_sweep_rejects_bad_arguments(sweep: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--trials", "1", *BUDGET, "--out", str(tmp_path)]  # tiny, should a check ever let a sweep start
    assert sweep.main([*args, "--trials", "0"]) == 2
    assert "--trials must be positive" in capsys.readouterr().err
    assert sweep.main([*args, "--env", "Nope-v9"]) == 2
    assert "unknown env id" in capsys.readouterr().err
    assert sweep.main([*args, "--hparams", "{"]) == 2
    assert not (tmp_path / "study.db").exists()


# --------------------------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------------------------


def test_record_video_writes_the_episode_and_its_return(tmp_path: Path) -> None:
    agent = DreamerAgent("MlpPolicy", ENV_ID, seed=0, device="cpu", **TINY).learn(100)
    agent.save(tmp_path / "dreamer.zip")
    out = tmp_path / "videos"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "record_video.py"), str(tmp_path / "dreamer.zip"), "--env", ENV_ID,
         "--episodes", "1", "--seed", "5", "--format", "gif", "--frame-skip", "4", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    frames = iio.imread(out / "agent-episode-0.gif", index=None)
    assert frames.shape == (51, 500, 500, 3)  # 200 steps + the reset frame, every 4th kept
    episode = json.loads((out / "episodes.json").read_text())["episodes"][0]
    assert episode["seed"] == 5 and episode["steps"] == 200
    assert f"return {episode['return']:.1f} over 200 steps" in result.stdout
    # SB3's evaluate_policy, which carries the recurrent state itself, sees the same return.
    vec_env = make_vec_env(ENV_ID, n_envs=1)
    vec_env.seed(5)
    returns, _ = evaluate_policy(DreamerAgent.load(tmp_path / "dreamer.zip"), vec_env, n_eval_episodes=1,
                                 deterministic=True, return_episode_rewards=True)  # fmt: skip
    assert episode["return"] == pytest.approx(returns[0], rel=1e-5)


def test_record_video_loads_sb3_learners_and_explains_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stable_baselines3 import SAC

    record_video = load_script("record_video")
    SAC("MlpPolicy", ENV_ID, seed=0, policy_kwargs={"net_arch": [8]}).save(tmp_path / "sac.zip")
    args = [str(tmp_path / "sac.zip"), "--env", ENV_ID, "--episodes", "1", "--format", "gif", "--frame-skip", "10"]
    assert record_video.main([*args, "--algo", "sac", "--out", str(tmp_path / "sac")]) == 0
    assert (tmp_path / "sac" / "agent-episode-0.gif").exists()
    assert "mean return" in capsys.readouterr().out
    assert record_video.main([*args, "--algo", "tianshou_sac", "--out", str(tmp_path)]) == 2
    assert "valid: dreamer" in capsys.readouterr().err
    assert record_video.main([*args, "--env", "CA11/ContinuousCartPole-v0", "--algo", "sac",
                              "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "the agent observes" in capsys.readouterr().err
    if importlib.util.find_spec("moviepy") is None:
        assert record_video.main([*args, "--algo", "sac", "--format", "mp4", "--out", str(tmp_path)]) == 2
        assert "needs moviepy" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------------
# Probing a saved agent
# --------------------------------------------------------------------------------------------------------------------


def test_probe_agent_puts_values_next_to_the_returns_paid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    agent = DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, device="cpu", **TINY).learn(80)
    agent.save(tmp_path / "dreamer.zip")
    probe = load_script("probe_agent")
    args = [str(tmp_path / "dreamer.zip"), "--env", "CA11/ContinuousCartPole-v0", "--seed", "3"]
    assert probe.main([*args, "--csv", str(tmp_path / "p.csv"), "--plot", str(tmp_path / "p.png")]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["terminated"].iat[-1] and not table["terminated"].iloc[:-1].any()  # the pole fell once, at the end
    # The episode is the one predict() plays, and the returns paid follow R_t = r_t + gamma * R_{t+1}.
    returns, _ = evaluate_policy(agent, make_vec_env("CA11/ContinuousCartPole-v0", n_envs=1, seed=3),
                                 n_eval_episodes=1, deterministic=True, return_episode_rewards=True)  # fmt: skip
    assert table["reward"].sum() == pytest.approx(returns[0])
    rtg, rewards = table["return_to_go"].to_numpy(), table["reward"].to_numpy()
    assert rtg[:-1] == pytest.approx(rewards[:-1] + agent.gamma * rtg[1:]) and rtg[-1] == rewards[-1]
    assert table["continue_prob"].between(0, 1).all() and (tmp_path / "p.png").stat().st_size > 0
    assert "critic - return paid" in capsys.readouterr().out
    # Bad input is named.
    assert probe.main([str(tmp_path / "missing.zip"), "--env", "CA11/ContinuousCartPole-v0"]) == 2
    assert probe.main([*args[:1], "--env", "CA11/ContinuousPendulum-v0"]) == 2  # 3 observations, not 4
    assert "trained on" in capsys.readouterr().err
    assert probe.main([*args, "--algo", "rssm_agent"]) == 2  # a Dreamer file is no RSSMAgent checkpoint
    assert "RSSMAgent" in capsys.readouterr().err


def test_probe_agent_probes_the_rssm_planners_critic(tmp_path: Path) -> None:
    small = {"learning_starts": 40, "batch_size": 2, "seq_len": 8, "horizon": 3,
             "planner_kwargs": {"candidates": 8, "elites": 2, "iterations": 1},
             "policy_kwargs": {"hidden_dim": 16, "state_dim": 16, "classes": 4, "units": 16, "bins": 31}}  # fmt: skip
    agent = RSSMAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, device="cpu", **small).learn(60)
    agent.save(tmp_path / "rssm.zip")
    probe = load_script("probe_agent")
    args = [str(tmp_path / "rssm.zip"), "--algo", "rssm_agent", "--env", "CA11/ContinuousCartPole-v0", "--seed", "3"]
    assert probe.main([*args, "--csv", str(tmp_path / "p.csv")]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    returns, _ = evaluate_policy(agent, make_vec_env("CA11/ContinuousCartPole-v0", n_envs=1, seed=3),
                                 n_eval_episodes=1, deterministic=True, return_episode_rewards=True)  # fmt: skip
    assert table["reward"].sum() == pytest.approx(returns[0])  # the episode its planner plays
    assert table["value"].notna().all() and table["continue_prob"].between(0, 1).all()
