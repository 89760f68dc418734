"""Train a DreamerAgent, evaluate it as it learns, and keep the agent, its learning curve and a GIF.

    python scripts/train_dreamer.py --env CA11/ContinuousPendulum-v0 --steps 3000 --out outputs/demo

Writes into ``--out``: ``dreamer.zip`` (the agent; ``DreamerAgent.load``), ``evaluations.npz`` (SB3's EvalCallback
log), ``learning_curve.png``, ``dreamer.gif`` (one deterministic episode of the trained agent) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless rendering

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.monitor import Monitor

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DREAMER_PRESETS, DreamerAgent
from ca11_agents.experiments.media import run_episode, write_video
from ca11_agents.visualization import plot_learning_curve


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CA11/ContinuousPendulum-v0", help="Gymnasium id of a Box-action env")
    parser.add_argument("--steps", type=int, default=3000, help="env steps to train for")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=500, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=5, help="deterministic episodes per evaluation")
    parser.add_argument("--preset", choices=sorted(DREAMER_PRESETS), default="cpu", help="network/batch sizes")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (the default networks are small: one thread is fastest, and more "
                             "threads slow down badly when other jobs share the cores)")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args()
    if min(args.steps, args.eval_every, args.eval_episodes, args.threads) < 1:
        parser.error("--steps, --eval-every, --eval-episodes and --threads must be positive")
    return args


def plot_curve(evaluations: Path, env_id: str, path: Path) -> None:
    """Mean and spread of the evaluation returns against env steps, with the env's solved threshold."""
    from benchmarks.tasks import env_threshold

    data = np.load(evaluations)
    plot_learning_curve(data["timesteps"], data["results"], f"Dreamer on {env_id}", env_threshold(env_id),
                        label="DreamerAgent (deterministic eval)", save_path=path)


def record_gif(agent: DreamerAgent, env_id: str, path: Path, seed: int) -> float:
    """One deterministic episode rendered to a GIF (every second frame, at the same speed); returns its return."""
    env = gym.make(env_id, render_mode="rgb_array")
    frames: list[np.ndarray] = []
    try:
        total, _ = run_episode(agent, env, seed, frames=frames)
    finally:
        env.close()
    write_video(frames[::2], path, env.metadata.get("render_fps", 30) / 2)
    return total


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    agent = DreamerAgent("MlpPolicy", args.env, seed=args.seed, device=args.device, verbose=0,
                         **DREAMER_PRESETS[args.preset])
    eval_env = Monitor(gym.make(args.env))
    eval_env.reset(seed=args.seed + 1000)
    callback = EvalCallback(eval_env, eval_freq=args.eval_every, n_eval_episodes=args.eval_episodes,
                            log_path=str(args.out), deterministic=True, verbose=1)
    print(f"Training DreamerAgent on {args.env} for {args.steps} env steps (device {agent.device}) ...")
    start = time.perf_counter()
    agent.learn(args.steps, callback=callback, progress_bar=not args.no_progress)
    wall = time.perf_counter() - start
    agent.save(args.out / "dreamer.zip")
    plot_curve(args.out / "evaluations.npz", args.env, args.out / "learning_curve.png")
    gif_return = record_gif(agent, args.env, args.out / "dreamer.gif", args.seed + 2000)
    evaluations = np.load(args.out / "evaluations.npz")
    summary = {
        "env": args.env,
        "steps": agent.num_timesteps,
        "updates": agent._n_updates,
        "wall_s": round(wall, 1),
        "device": str(agent.device),
        "eval_steps": evaluations["timesteps"].tolist(),
        "eval_return_mean": evaluations["results"].mean(1).round(1).tolist(),
        "gif_episode_return": round(gif_return, 1),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"Wrote {args.out}/dreamer.zip, learning_curve.png, dreamer.gif, evaluations.npz, summary.json")


if __name__ == "__main__":
    main()
