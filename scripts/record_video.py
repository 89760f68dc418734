"""Record deterministic episodes of a saved agent: MP4 with Gymnasium's RecordVideo when moviepy is installed,
otherwise GIF (frames gathered by Gymnasium's RenderCollection, written by imageio).

    python scripts/record_video.py outputs/demo/dreamer.zip --env CA11/ContinuousPendulum-v0 --episodes 3 \\
        --out outputs/videos
    python scripts/record_video.py sac_pendulum.zip --algo sac --env CA11/ContinuousPendulum-v0 --format gif

``--algo`` is ``dreamer`` (default) or any SB3-API learner of the benchmark (``sac``/``sb3_sac``, ``td3``, ``ppo``,
``recurrent_ppo``). Note that SB3's own ``.zip`` format unpickles objects when loading, so only load SB3 files you
trust; ca11 learners' checkpoints hold JSON and tensors only. Episode ``i`` is reset with seed ``--seed + i``. Writes
``OUT/<prefix>-episode-<i>.mp4`` (or ``.gif``) and ``OUT/episodes.json``, and prints each episode's return.

Runs on the core install (``pip install .``); ``--algo recurrent_ppo`` needs the ``baselines`` extra
(``pip install ".[baselines]"``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array rendering needs no window

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo, RenderCollection
from stable_baselines3.common.base_class import BaseAlgorithm

from benchmarks.algos import ALGOS, AlgoSpec
from benchmarks.tasks import import_env_packages
from ca11_agents.world_models.encoders import channel_first_space


def resolve_algo(name: str) -> AlgoSpec:
    """The benchmark's SB3-API learner called ``name`` (``sac`` is short for ``sb3_sac``)."""
    spec = ALGOS.get(name) or ALGOS.get(f"sb3_{name}")
    loadable = [n for n, s in ALGOS.items() if s.adapter == "sb3"]
    if spec is None or spec.adapter != "sb3":
        raise ValueError(f"--algo {name!r} cannot be loaded from a file; valid: {', '.join(loadable)} "
                         "(sb3_ may be left out)")  # fmt: skip
    return spec


def load_agent(algo: str, path: Path, device: str) -> BaseAlgorithm:
    """Load a saved learner with its class's ``load`` (DreamerAgent.load, SAC.load, ...)."""
    if not path.is_file():
        raise ValueError(f"no saved agent at {path}")
    return resolve_algo(algo).load_class().load(path, device=device)


def make_env(env_id: str, out_dir: Path, prefix: str, fmt: str) -> tuple[gym.Env, str]:
    """A recording env and the file extension it writes: ``RecordVideo`` (mp4) or ``RenderCollection`` (gif)."""
    has_moviepy = importlib.util.find_spec("moviepy") is not None  # RecordVideo's encoder
    if fmt == "mp4" and not has_moviepy:
        raise ValueError('--format mp4 needs moviepy (pip install "gymnasium[other]"); use --format gif')
    import_env_packages()
    env = gym.make(env_id, render_mode="rgb_array")
    if fmt != "gif" and has_moviepy:
        return RecordVideo(env, str(out_dir), episode_trigger=lambda _: True, name_prefix=prefix), "mp4"
    return RenderCollection(env), "gif"


def run_episode(agent: BaseAlgorithm, env: gym.Env, seed: int) -> tuple[float, int]:
    """One deterministic episode; returns ``(return, steps)``.

    ``predict`` follows SB3's recurrent convention: the state it returns is passed back, with ``episode_start``
    true on the first step only. Non-recurrent learners ignore both.
    """
    obs, _ = env.reset(seed=seed)
    state, episode_start = None, np.ones(1, dtype=bool)
    total, steps, done = 0.0, 0, False
    while not done:
        action, state = agent.predict(obs, state=state, episode_start=episode_start, deterministic=True)
        episode_start = np.zeros(1, dtype=bool)
        obs, reward, terminated, truncated, _ = env.step(action)
        total, steps, done = total + float(reward), steps + 1, terminated or truncated
    return total, steps


def record(
    agent: BaseAlgorithm,
    env_id: str,
    episodes: int,
    seed: int,
    out_dir: Path,
    prefix: str = "agent",
    fmt: str = "auto",
    frame_skip: int = 1,
) -> list[dict[str, Any]]:
    """Record ``episodes`` episodes into ``out_dir``; returns one record per episode (seed, return, steps, file).

    ``frame_skip`` keeps every k-th frame of a GIF (played k times slower per frame, so the speed is unchanged).
    """
    import imageio.v2 as imageio

    env, ext = make_env(env_id, out_dir, prefix, fmt)
    if agent.observation_space != channel_first_space(env.observation_space):
        env.close()
        raise ValueError(f"the agent observes {agent.observation_space}, but {env_id} gives {env.observation_space}")
    fps = env.metadata.get("render_fps", 30)
    records = []
    try:
        for i in range(episodes):
            episode_return, steps = run_episode(agent, env, seed + i)
            path = out_dir / f"{prefix}-episode-{i}.{ext}"
            if ext == "gif":  # RenderCollection holds every frame since the reset; render() hands them over
                imageio.mimsave(path, env.render()[::frame_skip], duration=1000 * frame_skip / fps, loop=0)
            records.append({"episode": i, "seed": seed + i, "return": episode_return, "steps": steps,
                            "file": path.name})  # fmt: skip
            print(f"episode {i} (seed {seed + i}): return {episode_return:.1f} over {steps} steps -> {path}",
                  flush=True)  # fmt: skip
    finally:
        env.close()  # RecordVideo writes the last video on close
    return records


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="saved agent (.zip)")
    parser.add_argument("--algo", default="dreamer", help="learner class: dreamer, sac, td3, ppo, recurrent_ppo")
    parser.add_argument("--env", default="CA11/ContinuousPendulum-v0", help="Gymnasium env id with rgb_array render")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to record")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode's reset")
    parser.add_argument("--format", choices=("auto", "mp4", "gif"), default="auto", help="auto: mp4 if moviepy")
    parser.add_argument("--frame-skip", type=int, default=1, help="GIF: keep every k-th frame (smaller files)")
    parser.add_argument("--prefix", default="agent", help="file name prefix")
    parser.add_argument("--device", default="auto", help="torch device to load the agent on")
    parser.add_argument("--out", type=Path, default=Path("outputs/videos"), help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Record the episodes; returns 0, or 2 for bad arguments."""
    args = build_parser().parse_args(argv)
    try:
        if args.episodes < 1 or args.frame_skip < 1:
            raise ValueError(f"--episodes and --frame-skip must be positive, got {args.episodes}, {args.frame_skip}")
        import_env_packages()  # registers the CA11 ids
        if args.env not in gym.registry:
            raise ValueError(f"unknown env id {args.env!r}")
        agent = load_agent(args.algo, args.path, args.device)
        args.out.mkdir(parents=True, exist_ok=True)
        records = record(agent, args.env, args.episodes, args.seed, args.out, args.prefix, args.format,
                         args.frame_skip)
    except (ValueError, ImportError) as err:  # ImportError: a ca11 learner that is not written yet
        print(f"error: {err}", file=sys.stderr)
        return 2
    (args.out / "episodes.json").write_text(json.dumps({"env": args.env, "agent": str(args.path),
                                                        "episodes": records}, indent=2) + "\n")  # fmt: skip
    returns = np.array([r["return"] for r in records])
    print(f"mean return {returns.mean():.1f} ± {returns.std():.1f} over {len(records)} episode(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
