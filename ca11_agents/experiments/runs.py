"""Run folders: ``ca11 train`` writes one, ``ca11 train --resume`` continues it, ``ca11 eval/render/dream`` read it.

A run folder holds::

    config.json         the RunConfig (ca11_agents.experiments.runconfig), loadable with RunConfig.load
    run.json            state: learner class, policy, resolved hyperparameters, env steps done, finished, wall-clock,
                        package versions and the sha256 of last.zip
    last.zip            the latest checkpoint: every train.checkpoint_every env steps, at the end and on Ctrl-C
    best_model.zip      the checkpoint of the best evaluation so far (SB3's EvalCallback)
    replay.npz          the replay buffer (ca11 learners; SB3's off-policy baselines write SB3's replay.pkl)
    vecnormalize.npz    VecNormalize's statistics, for the baselines whose settings normalise
    evaluations.npz     every evaluation (EvalCallback's format: timesteps, results, ep_lengths), kept on resume
    learning_curve.png  evaluation returns against env steps
    tb/                 TensorBoard logs (SB3's logger)

Every learner with SB3's interface (ca11's three, SB3's and sb3-contrib's) is trained here with SB3's own callbacks
and logger; tianshou's SAC (procedural API) through the benchmark adapter, which evaluates and logs but writes no
checkpoint (it has none to resume from: ``--resume`` says so).

Note that SB3's own files (a baseline's ``last.zip``, ``replay.pkl``) are pickles that SB3 unpickles when loading:
resume, evaluate or render baselines only from run folders you made. ca11 learners' files hold JSON and tensors.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ca11_agents.common.checkpoint import sha256_file
from ca11_agents.experiments.config import ConfigError, read_json
from ca11_agents.experiments.runconfig import RunConfig, resolve_algo_name, resolve_hyperparams

CONFIG_FILE, STATE_FILE, EVALUATIONS = "config.json", "run.json", "evaluations.npz"
LAST, BEST = "last.zip", "best_model.zip"
#: VecNormalize's statistics of last.zip and of best_model.zip (the baselines whose settings normalise).
STATISTICS, BEST_STATISTICS = "vecnormalize.npz", "best_vecnormalize.npz"
#: Most values an evaluations.npz may hold (a long run's log holds a few thousand).
MAX_EVALUATION_VALUES = 10_000_000


@dataclass
class Run:
    """A trained (or loaded) run: the learner, its config and its folder."""

    model: Any
    config: RunConfig
    path: Path
    state: dict[str, Any]
    checkpoint: Path | None = None
    """The file the learner was loaded from (:func:`load_run`)."""


def _write_state(out: Path, state: dict[str, Any]) -> None:
    from ca11_agents.common.checkpoint import atomic_write

    atomic_write(out / STATE_FILE, lambda f: f.write((json.dumps(state, indent=2) + "\n").encode()))


def _versions() -> dict[str, str]:
    import stable_baselines3
    import torch

    from ca11_agents.common.checkpoint import package_version

    return {"ca11": package_version(), "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__}


def read_evaluations(path: Path, until: int | None = None) -> dict[str, np.ndarray]:
    """``evaluations.npz`` (headers checked first, numeric, bounded, never unpickled): ``timesteps (n,)``,
    ``results (n, k)``, ``ep_lengths (n, k)``; with ``until``, only the evaluations at or before that env step (a
    run that stopped after its last checkpoint resumes from the checkpoint's step)."""
    from ca11_agents.common.checkpoint import read_npz

    if not path.is_file():
        return {"timesteps": np.zeros(0, np.int64), "results": np.zeros((0, 0)), "ep_lengths": np.zeros((0, 0))}
    log = read_npz(path, ("timesteps", "results", "ep_lengths"), MAX_EVALUATION_VALUES)
    n = len(log["timesteps"])
    if log["timesteps"].ndim != 1 or log["results"].ndim != 2 or log["results"].shape[0] != n \
            or log["ep_lengths"].shape != log["results"].shape:  # fmt: skip
        raise ValueError(f"{path}: timesteps, results and ep_lengths have inconsistent shapes")
    if until is not None:
        keep = log["timesteps"] <= until
        log = {k: v[keep] for k, v in log.items()}
    return log


# ------------------------------------------------------------------------------------------------------- environments
def make_envs(config: RunConfig, n_envs: int, normalize: dict[str, Any] | None,
              statistics: Path | None = None) -> tuple:  # fmt: skip
    """The training VecEnv (``n_envs`` envs seeded ``seed``...) and the evaluation one (seeded ``seed + 10000``),
    wrapped in ``VecNormalize`` when ``normalize`` is given (the evaluation env with the same observation options,
    not updated, rewards raw; statistics restored from the ``statistics`` file when given)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from benchmarks.adapters import EVAL_SEED_OFFSET
    from benchmarks.tasks import import_env_packages

    import_env_packages()
    seed, kwargs = config.train.seed, dict(config.env.kwargs)
    env = make_vec_env(config.env.id, n_envs=n_envs, seed=seed, env_kwargs=kwargs)
    eval_env = make_vec_env(config.env.id, n_envs=1, seed=seed + EVAL_SEED_OFFSET, env_kwargs=kwargs)
    if normalize is not None:
        env = VecNormalize(env, **normalize)
        options = {k: v for k, v in normalize.items() if k in ("norm_obs", "norm_obs_keys", "clip_obs", "epsilon")}
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False, **options)
        if statistics is not None and statistics.is_file():
            _load_normalization(env, statistics)
            _load_normalization(eval_env, statistics)
    return env, eval_env


def env_spaces(config: RunConfig) -> tuple[Any, Any]:
    """``(observation_space, action_space)`` of the run's env; one that cannot be made raises a ``ConfigError``
    naming ``env.id`` and ``env.kwargs``."""
    import gymnasium as gym

    from benchmarks.tasks import import_env_packages

    import_env_packages()
    try:
        env = gym.make(config.env.id, **config.env.kwargs)
    except (gym.error.Error, TypeError, ValueError, ImportError) as err:
        message = f"env.id {config.env.id!r} with env.kwargs {config.env.kwargs} cannot be made: {err}"
        raise ConfigError(message) from None
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _save_normalization(env: Any, path: Path) -> None:
    from ca11_agents.common.checkpoint import atomic_write

    arrays = {f"{name}_{part}": np.asarray(getattr(getattr(env, name), part), np.float64)
              for name in ("obs_rms", "ret_rms") for part in ("mean", "var", "count")}  # fmt: skip
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _load_normalization(env: Any, path: Path) -> None:
    from ca11_agents.common.checkpoint import read_npz

    names = tuple(f"{name}_{part}" for name in ("obs_rms", "ret_rms") for part in ("mean", "var", "count"))
    data = read_npz(path, names, 1_000_000)
    for name in ("obs_rms", "ret_rms"):
        rms = getattr(env, name)
        for part in ("mean", "var", "count"):
            value = np.asarray(data[f"{name}_{part}"], np.float64)
            if value.shape != np.shape(getattr(rms, part)):
                raise ValueError(f"{path}: {name}.{part} has shape {value.shape}, the env needs "
                                 f"{np.shape(getattr(rms, part))}")  # fmt: skip
            setattr(rms, part, value if value.ndim else float(value))


# ------------------------------------------------------------------------------------------------------------- training
def _callbacks(out: Path, eval_env: Any, config: RunConfig, previous: dict[str, np.ndarray]) -> list:
    """SB3's EvalCallback (best checkpoint, evaluations.npz) on multiples of eval_every env steps, and the saver."""
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

    train = config.train

    class StepEvaluation(EvalCallback):
        """EvalCallback evaluating at 0, every ``eval_every`` env steps (whatever ``n_envs``) and at the end, and
        continuing a resumed run's log and best return."""

        def _init_callback(self) -> None:
            super()._init_callback()
            self.evaluations_timesteps = [int(t) for t in previous["timesteps"]]
            self.evaluations_results = [list(r) for r in previous["results"]]
            self.evaluations_length = [list(r) for r in previous["ep_lengths"]]
            if len(previous["timesteps"]):
                self.best_mean_reward = float(np.max(previous["results"].mean(axis=1)))
            self.next_eval = (self.model.num_timesteps // train.eval_every + 1) * train.eval_every

        def evaluate_now(self) -> None:
            self.num_timesteps = self.model.num_timesteps
            if self.evaluations_timesteps and self.evaluations_timesteps[-1] == self.num_timesteps:
                return
            best = self.best_mean_reward
            super()._on_step()  # eval_freq is 1: this evaluates (and saves best_model.zip on a new best)
            statistics = self.model.get_vec_normalize_env()
            if self.best_mean_reward > best and statistics is not None:  # the best model's own statistics
                _save_normalization(statistics, out / BEST_STATISTICS)

        def _on_training_start(self) -> None:
            self.evaluate_now()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += train.eval_every
                self.evaluate_now()
            return True

        def _on_training_end(self) -> None:
            self.evaluate_now()

    class SaveLast(BaseCallback):
        """Saves last.zip (and the replay) every ``checkpoint_every`` env steps."""

        def _init_callback(self) -> None:
            self.next_save = (self.model.num_timesteps // train.checkpoint_every + 1) * train.checkpoint_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_save:
                while self.next_save <= self.num_timesteps:
                    self.next_save += train.checkpoint_every
                save_last(self.model, out, config, finished=False)
            return True

    evaluation = StepEvaluation(eval_env, n_eval_episodes=train.eval_episodes, eval_freq=1, log_path=str(out),
                                best_model_save_path=str(out), deterministic=True, verbose=0)  # fmt: skip
    return [evaluation, SaveLast()]


def save_last(model: Any, out: Path, config: RunConfig, finished: bool, wall_s: float | None = None) -> None:
    """Write last.zip, the replay (``train.save_replay``), VecNormalize's statistics and run.json."""
    tmp = out / "last.tmp.zip"
    model.save(tmp)
    os.replace(tmp, out / LAST)
    replay = getattr(model, "replay_buffer", None)
    if config.train.save_replay and replay is not None:
        name = "replay.npz" if is_ca11(model) else "replay.pkl"
        tmp_replay = out / f"replay.tmp{Path(name).suffix}"
        model.save_replay_buffer(tmp_replay)
        os.replace(tmp_replay, out / name)
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        _save_normalization(vec_normalize, out / STATISTICS)
    state = read_state(out) if (out / STATE_FILE).is_file() else {}
    state.update(num_timesteps=int(model.num_timesteps), finished=finished, last_sha256=sha256_file(out / LAST))
    if wall_s is not None:
        state["wall_s"] = round(state.get("wall_s", 0.0) + wall_s, 1)
    _write_state(out, state)


def is_ca11(model: Any) -> bool:
    """Whether ``model`` is a ca11 learner (safe checkpoints and replay files, a world model)."""
    return type(model).__module__.startswith("ca11_agents")


def read_state(out: Path) -> dict[str, Any]:
    """``run.json`` of the run folder ``out``."""
    state = read_json(out / STATE_FILE)
    if not isinstance(state, dict):
        raise ConfigError(f"{out / STATE_FILE} is not a run state")
    return state


def train_run(config: RunConfig, out: str | os.PathLike, resume: bool = False) -> Run:
    """Train ``config`` into the run folder ``out`` (see the module docstring); with ``resume``, continue the run
    saved there to ``config.train.steps`` env steps (a run that stopped before its first checkpoint starts over).
    Whatever stops training (Ctrl-C, an error) saves last.zip and the replay first."""
    from stable_baselines3.common.vec_env import VecTransposeImage

    from benchmarks.adapters import choose_policy, sb3_kwargs
    from benchmarks.algos import get_algo

    out = Path(out)
    algo = resolve_algo_name(config.algo)
    hyperparams = resolve_hyperparams(config)  # checks every key and type before anything is built or written
    spec = get_algo(algo)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a run folder")
    if resume and not (out / LAST).is_file():
        if spec.adapter != "sb3":
            raise ConfigError(f"{out} has no {LAST} to resume from ({algo} runs write no checkpoint)")
        print(f"{out} has no {LAST} (it stopped before its first checkpoint): training it from the start")
        _set_aside(out / EVALUATIONS)
        resume = False
    elif not resume and (out / CONFIG_FILE).exists():
        raise ConfigError(f"{out} already holds a run: pass --resume to continue it, or another --out")
    observation_space, action_space = env_spaces(config)  # a ConfigError naming env.id if it cannot be made
    reason = spec.unsupported_reason(observation_space, action_space)
    if reason is not None:
        raise ConfigError(f"{algo} cannot train on {config.env.id}: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    if spec.adapter != "sb3":
        return _train_procedural(spec, config, out, hyperparams)
    learner_class = spec.load_class()
    if config.train.threads is not None:
        import torch

        torch.set_num_threads(config.train.threads)
    action_dim = int(np.prod(action_space.shape)) if action_space.shape else 1
    settings = sb3_kwargs(hyperparams, action_dim)
    policy = choose_policy(learner_class, observation_space, config.policy or settings.policy)
    state = read_state(out) if resume else {}
    n_envs = int(state.get("n_envs") or config.env.n_envs or settings.n_envs)
    env, eval_env = make_envs(config, n_envs, settings.normalize, out / STATISTICS if resume else None)
    tb = str(out / "tb")
    try:
        if resume:
            model = learner_class.load(out / LAST, env=env, device=config.train.device, tensorboard_log=tb)
            replay = out / ("replay.npz" if is_ca11(model) else "replay.pkl")
            if getattr(model, "replay_buffer", None) is not None and replay.is_file():
                model.load_replay_buffer(replay)
        else:
            model = learner_class(policy, env, seed=config.train.seed, device=config.train.device, verbose=0,
                                  tensorboard_log=tb, **settings.kwargs)  # fmt: skip
            config.save(out / CONFIG_FILE)
            state = {"algo": algo, "class": f"{learner_class.__module__}.{learner_class.__name__}", "policy": policy,
                     "env": config.env.id, "n_envs": n_envs, "hyperparams": hyperparams, "versions": _versions(),
                     "wall_s": 0.0}  # fmt: skip
        if isinstance(model.get_env(), VecTransposeImage) and not isinstance(eval_env, VecTransposeImage):
            eval_env = VecTransposeImage(eval_env)  # as SB3 wrapped the training env: channel-first images
        state.update(target_steps=config.train.steps)
        _write_state(out, state)
        remaining = config.train.steps - int(model.num_timesteps)
        if remaining <= 0:
            return Run(model, config, out, state)
        previous = read_evaluations(out / EVALUATIONS, until=int(model.num_timesteps))
        start = time.perf_counter()
        try:
            model.learn(remaining, callback=_callbacks(out, eval_env, config, previous),
                        progress_bar=config.train.progress_bar, reset_num_timesteps=not resume,
                        tb_log_name=algo)  # fmt: skip
        except BaseException:
            try:  # keep what was learned; the original error is what the user needs to see
                save_last(model, out, config, finished=False, wall_s=time.perf_counter() - start)
            except Exception:  # noqa: BLE001
                pass
            raise
        save_last(model, out, config, finished=True, wall_s=time.perf_counter() - start)
        _plot(out, config)
        return Run(model, config, out, read_state(out), out / LAST)
    finally:
        env.close()
        eval_env.close()


def _set_aside(path: Path) -> None:
    """Rename ``path`` out of the way (``name.<time>.old``) rather than delete it: nothing a run wrote is lost."""
    if path.exists():
        path.rename(path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.old"))


def _train_procedural(spec: Any, config: RunConfig, out: Path, hyperparams: dict[str, Any]) -> Run:
    """tianshou's SAC through the benchmark adapter: evaluations.npz (written after every evaluation) and
    TensorBoard, no checkpoint. The adapter makes its own single env from ``env.id``, on the CPU or CUDA."""
    from torch.utils.tensorboard import SummaryWriter

    from benchmarks.adapters import EvalClock, RunConfig as AdapterConfig, train
    from benchmarks.algos import variant_spec
    from benchmarks.run import resolve_device

    ignored = [name for name, value in (("env.kwargs", config.env.kwargs), ("env.n_envs", config.env.n_envs),
                                        ("policy", config.policy), ("train.threads", config.train.threads))
               if value]  # fmt: skip
    if ignored:
        raise ConfigError(f"{spec.name} (the benchmark's tianshou adapter) does not take {', '.join(ignored)}")
    config.save(out / CONFIG_FILE)
    spec = variant_spec(spec.name, spec.name, hyperparams)
    rows: list[tuple[int, float, float]] = []
    writer = SummaryWriter(str(out / "tb" / spec.name))

    def record(evaluation: Any) -> None:
        rows.append((evaluation.env_steps, evaluation.return_mean, evaluation.return_std))
        writer.add_scalar("eval/mean_reward", evaluation.return_mean, evaluation.env_steps)
        np.savez(out / EVALUATIONS, timesteps=np.array([r[0] for r in rows]),
                 results=np.array([[r[1]] for r in rows]), ep_lengths=np.zeros((len(rows), 1)))  # fmt: skip
        print(f"env steps {evaluation.env_steps}: return {evaluation.return_mean:.1f} ± {evaluation.return_std:.1f}")

    device = resolve_device(config.train.device, None)
    start = time.perf_counter()
    try:
        train(spec, AdapterConfig(config.env.id, config.train.seed, config.train.steps, config.train.eval_every,
                                  config.train.eval_episodes, device), EvalClock(record))  # fmt: skip
    finally:
        writer.close()
    state = {"algo": spec.name, "class": spec.target, "env": config.env.id, "hyperparams": hyperparams,
             "num_timesteps": rows[-1][0] if rows else 0, "finished": True, "checkpoint": None,
             "wall_s": round(time.perf_counter() - start, 1), "versions": _versions()}  # fmt: skip
    _write_state(out, state)
    _plot(out, config)
    return Run(None, config, out, state)


def _plot(out: Path, config: RunConfig) -> None:
    from benchmarks.tasks import env_threshold
    from ca11_agents.visualization import plot_learning_curve

    log = read_evaluations(out / EVALUATIONS)
    if len(log["timesteps"]):
        plot_learning_curve(log["timesteps"], log["results"], f"{config.algo} on {config.env.id}",
                            env_threshold(config.env.id), save_path=out / "learning_curve.png")  # fmt: skip


def resume_run(out: str | os.PathLike, steps: int | None = None, device: str | None = None,
               progress_bar: bool | None = None) -> Run:  # fmt: skip
    """Continue the run in ``out`` to ``steps`` env steps (default: its configured budget); ``device`` and
    ``progress_bar`` may change, nothing else (config.json is rewritten only with checked values)."""
    out = Path(out)
    config = RunConfig.load(out / CONFIG_FILE)
    changes: dict[str, Any] = {k: v for k, v in (("steps", steps), ("device", device), ("progress_bar", progress_bar))
                               if v is not None}  # fmt: skip
    if steps is not None and (out / STATE_FILE).is_file():
        done = int(read_state(out).get("num_timesteps") or 0)
        if steps < done:
            raise ConfigError(f"--steps {steps} is below the {done} env steps {out} has already trained")
    if changes:
        config = config.replace(train=config.train.replace(**changes))  # checked (a bad device stops here)
        config.save(out / CONFIG_FILE)
    return train_run(config, out, resume=True)


def load_run(path: str | os.PathLike, checkpoint: str = "best", device: str = "auto") -> Run:
    """The learner saved in the run folder ``path``: ``checkpoint`` ``"best"`` (best_model.zip, else last.zip) or
    ``"last"``; or a checkpoint file inside a run folder."""
    from benchmarks.algos import get_algo

    path = Path(path)
    folder = path.parent if path.is_file() else path
    config = RunConfig.load(folder / CONFIG_FILE)
    if path.is_file():
        file = path
    elif checkpoint in ("best", "last"):
        file = folder / (BEST if checkpoint == "best" and (folder / BEST).is_file() else LAST)
    else:
        raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    if not file.is_file():
        raise ConfigError(f"{folder} has no checkpoint ({file.name}): was it trained with tianshou_sac, or not "
                          "trained yet?")  # fmt: skip
    model = get_algo(resolve_algo_name(config.algo)).load_class().load(file, device=device)
    return Run(model, config, folder, read_state(folder), file)


def run_dreamer_experiment(config: RunConfig | dict[str, Any] | str | None = None,
                           out: str | os.PathLike = "runs/dreamer") -> Any:  # fmt: skip
    """The notebook's Dreamer experiment: train a :class:`~ca11_agents.DreamerAgent` as ``config`` says (a
    :class:`RunConfig`, its dict, a named config of :data:`~ca11_agents.experiments.runconfig.PRESETS`, or ``None``
    for ``"pendulum"``) into the run folder ``out``; returns the trained agent (the folder holds its checkpoints,
    evaluations, learning curve and TensorBoard logs)."""
    from ca11_agents.experiments.runconfig import PRESETS

    if config is None or isinstance(config, str):
        name = config or "pendulum"
        if name not in PRESETS:
            raise ConfigError(f"unknown Dreamer config {name!r}; named configs: {', '.join(PRESETS)}")
        config = PRESETS[name]
    elif not isinstance(config, RunConfig):
        config = RunConfig.from_dict(config)
    if resolve_algo_name(config.algo) != "dreamer":
        raise ConfigError(f"run_dreamer_experiment trains Dreamer, the config says algo={config.algo!r} "
                          "(use train_run for other learners)")  # fmt: skip
    return train_run(config, out).model
