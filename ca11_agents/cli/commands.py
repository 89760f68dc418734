"""The ``ca11`` commands that live in this package: their parsers (``add_*``) and what they do (``do_*``).

Each command is a thin layer over a library function, so that everything it does is also a Python call:
:func:`ca11_agents.experiments.train_run` / :func:`~ca11_agents.experiments.resume_run` (train),
:func:`~ca11_agents.experiments.evaluate_run` (eval), :func:`~ca11_agents.experiments.render_run` (render),
:func:`~ca11_agents.experiments.dream` (dream), the notebook's ``run_*_experiment`` functions (experiment).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ca11_agents.experiments.config import ConfigError, apply_overrides

class _FORMAT(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, unless the help already says what the default is (``None``: "the
    config's") or the option is a flag."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
            return text
        return super()._get_help_string(action)


class _HelpFormatter(_FORMAT, argparse.RawDescriptionHelpFormatter):
    """Defaults in the options' help, the epilog's line breaks kept."""


def _add_run_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a run folder written by ca11 train (or a checkpoint file in one)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="best_model.zip (the best evaluation; last.zip if there is none) or last.zip")
    parser.add_argument("--device", default="auto", help="torch device to load the learner on")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")


# ---------------------------------------------------------------------------------------------------------- train
def add_train(sub: Any) -> None:
    from ca11_agents.experiments.runconfig import PRESETS, EnvConfig, RunConfig, TrainConfig

    epilog = ("Configuration (write any field with --set KEY=VALUE; a KEY that is not a section below goes to "
              "hyperparams, e.g. --set gamma=0.95 --set policy_kwargs.units=64):\n" + RunConfig.describe()
              + "\nenv:\n" + EnvConfig.describe() + "\ntrain:\n" + TrainConfig.describe()
              + f"\n\nNamed configs (--config NAME): {', '.join(PRESETS)}. Learner presets (--preset): dreamer: "
              "cpu, v3, gpu. A learner's hyperparameters: ca11 train ALGO --list-hyperparams.")  # fmt: skip
    p = sub.add_parser("train", help="train a learner or baseline into a run folder, or resume one",
                       formatter_class=_HelpFormatter, epilog=epilog,
                       description="Train ALGO on --env, evaluating as it learns; writes the run folder --out "
                                   "(config.json, run.json, last.zip, best_model.zip, replay, evaluations.npz, "
                                   "learning_curve.png, tb/).")  # fmt: skip
    p.add_argument("algo", nargs="?", default=None,
                   help="dreamer, world_model_agent, rssm_agent, sac, td3, ppo, dqn, recurrent_ppo, tianshou_sac "
                        "(default: the config's, dreamer)")  # fmt: skip
    p.add_argument("--config", default=None, help="start from a named config or a config.json file (default: the defaults below)")
    p.add_argument("--env", default=None, help="Gymnasium env id (default: the config's, the pendulum)")
    p.add_argument("--steps", type=int, default=None, help="env steps to train for (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's, 0)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda (default: the config's, auto)")
    p.add_argument("--eval-every", type=int, default=None, help="env steps between evaluations (default: the config's, 500)")
    p.add_argument("--eval-episodes", type=int, default=None, help="deterministic episodes per evaluation (default: the config's, 5)")
    p.add_argument("--n-envs", type=int, default=None, help="training envs (default: the config's, else the registry's: 1 for ca11 learners)")
    p.add_argument("--policy", default=None, help="MlpPolicy, CnnPolicy, MultiInputPolicy (default: from the space)")
    p.add_argument("--preset", default=None, help="a named set of the learner's hyperparameters (default: none)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable); VALUE is JSON or a plain string")
    p.add_argument("--out", type=Path, default=None, help="the run folder to create (required unless --resume)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN",
                   help="continue the run in RUN (to --steps if given, else its own budget)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--list-hyperparams", action="store_true", help="print ALGO's hyperparameters and exit")
    p.set_defaults(handler=do_train)


def _starting_config(source: str | None) -> Any:
    from ca11_agents.experiments.runconfig import PRESETS, RunConfig

    if source is None:
        return RunConfig()
    if source in PRESETS:
        return PRESETS[source]
    if source.endswith(".json") or Path(source).exists():
        return RunConfig.load(source)
    raise ConfigError(f"--config {source!r} is neither a named config ({', '.join(PRESETS)}) nor a JSON file")


def _run_overrides(args: argparse.Namespace) -> list[str]:
    """The command line's flags as overrides, then --set (hyperparameters when the key is no config section)."""
    from ca11_agents.experiments.runconfig import RunConfig

    flags = {"algo": args.algo, "env.id": args.env, "train.steps": args.steps, "train.seed": args.seed,
             "train.device": args.device, "train.eval_every": args.eval_every,
             "train.eval_episodes": args.eval_episodes, "env.n_envs": args.n_envs, "policy": args.policy,
             "preset": args.preset}  # fmt: skip
    items = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    if args.no_progress:
        items.append("train.progress_bar=false")
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for item in args.overrides:
        key = item.partition("=")[0]
        items.append(item if key.split(".")[0] in fields else f"hyperparams.{item}")
    return items


def do_train(args: argparse.Namespace) -> int:
    from ca11_agents.experiments.runconfig import config_class, resolve_algo_name
    from ca11_agents.experiments.runs import resume_run, train_run

    if args.list_hyperparams:
        typed = config_class(resolve_algo_name(args.algo or "dreamer"))
        print(typed.describe() if typed is not None else "a baseline: its constructor's arguments (see its docs) "
              "and rl-baselines3-zoo's n_envs, policy, normalize, noise_type, noise_std")  # fmt: skip
        return 0
    if args.resume is not None:
        ignored = [flag for flag, value in (("ALGO", args.algo), ("--config", args.config), ("--env", args.env),
                   ("--seed", args.seed), ("--preset", args.preset), ("--out", args.out), ("--set", args.overrides),
                   ("--policy", args.policy), ("--n-envs", args.n_envs), ("--eval-every", args.eval_every),
                   ("--eval-episodes", args.eval_episodes)) if value]  # fmt: skip
        if ignored:
            raise ConfigError(f"--resume continues the run as it was configured; {', '.join(ignored)} cannot change "
                              "it (only --steps, --device and --no-progress can)")  # fmt: skip
        result = resume_run(args.resume, steps=args.steps, device=args.device,
                            progress_bar=False if args.no_progress else None)  # fmt: skip
    else:
        if args.out is None:
            raise ConfigError("--out (the run folder to create) is required, or --resume RUN")
        config = apply_overrides(_starting_config(args.config), _run_overrides(args))
        result = train_run(config, args.out)
    state = result.state
    print(f"{state.get('algo', result.config.algo)} on {result.config.env.id}: {state.get('num_timesteps')} env "
          f"steps in {state.get('wall_s')} s -> {result.path}")  # fmt: skip
    return 0


# ------------------------------------------------------------------------------------------------ eval and render
def add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="deterministic episodes of a trained run", formatter_class=_FORMAT,
                       description="Evaluate a run's learner on deterministic episodes of its env.")  # fmt: skip
    _add_run_source(p)
    p.add_argument("--episodes", type=int, default=10, help="episodes")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.set_defaults(handler=do_eval)


def do_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from ca11_agents.experiments.media import evaluate_run
    from ca11_agents.experiments.runs import load_run

    _positive(episodes=args.episodes)
    run = load_run(args.run, args.checkpoint, args.device)
    episodes = evaluate_run(run, args.episodes, args.seed)
    returns = np.array([e["return"] for e in episodes])
    saved = _checkpoint_identity(run.checkpoint)
    report = {"run": str(run.path), "checkpoint": str(run.checkpoint), "env": run.config.env.id,
              "algo": run.config.algo, "num_timesteps": int(run.model.num_timesteps), **saved,
              "mean_return": float(returns.mean()), "std_return": float(returns.std()),
              "median_return": float(np.median(returns)), "episodes": episodes}  # fmt: skip
    print(f"{report['algo']} ({report['num_timesteps']} env steps) on {report['env']}: return "
          f"{report['mean_return']:.1f} ± {report['std_return']:.1f} (median {report['median_return']:.1f}) over "
          f"{len(episodes)} deterministic episodes")  # fmt: skip
    print(f"checkpoint {run.checkpoint.name}: sha256 {saved['checkpoint_sha256'][:16]}..., saved with ca11 "
          f"{saved['saved_ca11_version'] or 'unknown'}")  # fmt: skip
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as err:
            raise ConfigError(f"--json {args.json}: {err.strerror}") from None
    return 0


def _checkpoint_identity(path: Path) -> dict[str, Any]:
    """The file's sha256 and, for ca11 checkpoints, the version and tensor hash recorded inside it."""
    from ca11_agents.common.checkpoint import checkpoint_info, sha256_file

    identity: dict[str, Any] = {"checkpoint_sha256": sha256_file(path),
                                "saved_ca11_version": None, "saved_tensors_sha256": None}  # fmt: skip
    try:
        info = checkpoint_info(path)
    except ValueError:  # an SB3 baseline's zip: no ca11 header
        return identity
    identity.update(saved_ca11_version=info["ca11_version"], saved_tensors_sha256=info["tensors_sha256"])
    return identity


def add_render(sub: Any) -> None:
    p = sub.add_parser("render", help="watch a trained run in a window or record it to a video",
                       formatter_class=_FORMAT,
                       description="Play deterministic episodes of a run's learner in a pygame window, or write "
                                   "them to --video (.gif; .mp4 with the video extra).")  # fmt: skip
    _add_run_source(p)
    p.add_argument("--episodes", type=int, default=1, help="episodes")
    p.add_argument("--video", type=Path, default=None, help="write a .gif or .mp4 instead of opening a window")
    p.add_argument("--frame-skip", type=int, default=1, help="keep every k-th frame (smaller files)")
    p.set_defaults(handler=do_render)


def do_render(args: argparse.Namespace) -> int:
    from ca11_agents.experiments.media import VIDEO_SUFFIXES, render_run
    from ca11_agents.experiments.runs import load_run

    _positive(episodes=args.episodes, frame_skip=args.frame_skip)
    if args.video is not None and args.video.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--video {args.video} must end in {' or '.join(VIDEO_SUFFIXES)}")
    run = load_run(args.run, args.checkpoint, args.device)
    for e in render_run(run, args.episodes, args.seed, args.video, args.frame_skip):
        print(f"episode {e['episode']} (seed {e['seed']}): return {e['return']:.1f} over {e['steps']} steps")
    if args.video is not None:
        print(f"wrote {args.video}")
    return 0


def add_dream(sub: Any) -> None:
    p = sub.add_parser("dream", help="the real episode beside what the world model imagines", formatter_class=_FORMAT,
                       description="Run one deterministic episode; the world model observes the first --context "
                                   "steps and then imagines the rest under the same actions. Writes the real and "
                                   "imagined frames side by side with their divergence plotted under them.")
    _add_run_source(p)
    p.add_argument("--video", type=Path, required=True, help="the .gif or .mp4 to write")
    p.add_argument("--context", type=int, default=5, help="steps the model observes before it imagines")
    p.add_argument("--horizon", type=int, default=None, help="imagined steps (default: the rest of the episode)")
    p.add_argument("--plot", type=Path, default=None, help="also write the divergence figure (.png)")
    p.set_defaults(handler=do_dream)


def do_dream(args: argparse.Namespace) -> int:
    from ca11_agents.experiments.dream import dream, plot_dream, write_dream_video
    from ca11_agents.experiments.media import VIDEO_SUFFIXES, make_env
    from ca11_agents.experiments.runs import is_ca11, load_run

    _positive(context=args.context, **({"horizon": args.horizon} if args.horizon is not None else {}))
    if args.video.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--video {args.video} must end in {' or '.join(VIDEO_SUFFIXES)}")
    run = load_run(args.run, args.checkpoint, args.device)
    if not is_ca11(run.model):
        raise ConfigError(f"{run.config.algo} has no world model to dream with: dream needs a ca11 learner "
                          "(dreamer, world_model_agent, rssm_agent)")  # fmt: skip
    env = make_env(run, "rgb_array")
    try:
        result = dream(run.model, env, seed=args.seed, context=args.context, horizon=args.horizon)
    finally:
        env.close()
    frames = write_dream_video(result, args.video)
    if args.plot is not None:
        plot_dream(result, args.plot)
    print(f"wrote {args.video} ({frames} frames)" + (f" and {args.plot}" if args.plot else ""))
    return 0


# ------------------------------------------------------------------------------------------------------ experiment
def add_experiment(sub: Any) -> None:
    p = sub.add_parser("experiment", help="the notebook's experiments: world-model, rssm, dreamer",
                       formatter_class=_HelpFormatter,
                       description="world-model: VAE + latent dynamics + reward model on random transitions "
                                   "(notebook section 1); rssm: the RSSM on the memory task (section 2); dreamer: "
                                   "a Dreamer run (section 3). Each writes config.json, metrics, figures and "
                                   "TensorBoard logs into --out.")  # fmt: skip
    p.add_argument("name", choices=("world-model", "rssm", "dreamer"), help="the experiment")
    p.add_argument("--config", default=None, help="a named config (see --list) or a JSON file (default: notebook/"
                                                  "pendulum)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="the folder to write (required unless --list)")
    p.add_argument("--list", action="store_true", help="print the experiment's config fields and named configs")
    p.set_defaults(handler=do_experiment)


def do_experiment(args: argparse.Namespace) -> int:
    from ca11_agents import experiments as ex

    kinds = {"world-model": (ex.WorldModelConfig, ex.WORLD_MODEL_PRESETS, ex.run_world_model_experiment, "notebook"),
             "rssm": (ex.RSSMConfig, ex.RSSM_PRESETS, ex.run_rssm_experiment, "full"),
             "dreamer": (ex.RunConfig, ex.PRESETS, ex.run_dreamer_experiment, "pendulum")}  # fmt: skip
    config_cls, presets, run, default = kinds[args.name]
    if args.list:
        print(config_cls.describe())
        print(f"named configs: {', '.join(presets)}")
        return 0
    if args.out is None:
        raise ConfigError("--out (the folder to write) is required")
    if (args.out / "config.json").exists():
        raise ConfigError(f"--out {args.out} already holds a run or an experiment; choose another folder")
    source = args.config or (default if default in presets else next(iter(presets)))
    if source in presets:
        config = presets[source]
    elif Path(source).is_file():
        config = config_cls.load(source)
    else:
        raise ConfigError(f"--config {source!r} is neither a named config ({', '.join(presets)}) nor a JSON file")
    config = apply_overrides(config, args.overrides)
    run(config, args.out)
    print(f"{args.name} experiment written to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------- export and serve
def add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export a Dreamer run's acting step to ONNX (deploy extra)",
                       formatter_class=_FORMAT)  # fmt: skip
    p.add_argument("run", type=Path, help="a run folder (or a checkpoint file in one)")
    p.add_argument("--onnx", type=Path, default=None, help="the .onnx file to write, with a .json sidecar "
                                                            "(default: RUN/policy.onnx)")  # fmt: skip
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint")
    p.set_defaults(handler=do_export)


def do_export(args: argparse.Namespace) -> int:
    from ca11_agents.experiments.runs import load_run

    run = load_run(args.run, args.checkpoint, "cpu")
    if not hasattr(run.model, "export_onnx"):
        raise ConfigError(f"{run.config.algo} runs cannot be exported to ONNX (DreamerAgent's can)")
    target = args.onnx or run.path / "policy.onnx"
    sidecar = run.model.export_onnx(target)
    print(f"wrote {target} and {sidecar}")
    return 0


def add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a run's deterministic actions over HTTP (deploy extra)",
                       formatter_class=_FORMAT)  # fmt: skip
    p.add_argument("run", type=Path, help="a run folder, a checkpoint, or an exported .onnx")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint of a run folder")
    p.set_defaults(handler=do_serve, pass_through=True)
    p.epilog = ("Other options go to the server (python -m ca11_agents.deploy.serve): --host (default 127.0.0.1), "
                "--port (8000), --backend torch|onnx, --max-sessions (256), --session-ttl (600 s), --log-level.")


def do_serve(args: argparse.Namespace) -> int:
    from ca11_agents.deploy import serve
    from ca11_agents.experiments.runs import BEST, LAST, RunConfig

    target, extra = args.run, list(args.args)
    if target.is_dir():
        config = RunConfig.load(target / "config.json")
        best = target / BEST
        target = best if args.checkpoint == "best" and best.is_file() else target / LAST
        if "--algo" not in extra:
            extra += ["--algo", config.algo]
    return serve.main([str(target), *extra])


# ------------------------------------------------------------------------------------------------------- dispatch
def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Call the command's handler; a bad argument or file ends with status 2 and a message naming it."""
    import gymnasium as gym

    from benchmarks.algos import AlgorithmUnavailableError

    try:
        return args.handler(args)
    except (ConfigError, AlgorithmUnavailableError, OSError, ValueError, gym.error.Error) as err:
        print(f"ca11 {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        saved = " (last.zip and the replay were saved first: ca11 train --resume continues)" if (
            args.command == "train") else ""  # fmt: skip
        print(f"ca11 {args.command}: interrupted{saved}", file=sys.stderr)
        return 130
