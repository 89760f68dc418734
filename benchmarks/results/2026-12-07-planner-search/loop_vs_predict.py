"""#11 probe: the planner's training episodes reach the time limit while its evaluations drift off the track. Is the
difference the model's updates during the episode, the exploration, or how ``predict`` acts against the loop?

Trains the default WorldModelAgent (seed SEED) on the cart-pole for STEPS, saves it with its replay, then acts from
that same saved agent in five ways and reports the episodes' returns and how many left the track:
- ``predict_det``: ``predict(deterministic=True)`` (the runner's evaluation), env seeded seed + 10000;
- ``predict_sto``: ``predict(deterministic=False)``, the same env seeding;
- ``loop_frozen``: the learner loop (``learn(N, reset_num_timesteps=False)``) with ``gradient_steps=0``: the
  training behaviour with no updates;
- ``loop_frozen_no_noise``: as ``loop_frozen`` with the planner's ``exploration_std`` at 0 (the plan's mean);
- ``loop``: the learner loop as it trains (3 updates per step).
Usage (repository root): python benchmarks/results/2026-12-07-planner-search/loop_vs_predict.py SEED STEPS N OUT.csv
"""
import csv, os, sys, tempfile, time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

import ca11_gym  # noqa: F401
from ca11_agents import WorldModelAgent

seed, steps, n_steps, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ENV = "CA11/ContinuousCartPole-v0"
torch.set_num_threads(1)


def predict_episodes(agent, deterministic, count=5):
    env, returns, off = gym.make(ENV), [], 0
    obs, _ = env.reset(seed=seed + 10000)
    for _ in range(count):
        state, start, done, total = None, np.ones((1,), bool), False, 0.0
        while not done:
            action, state = agent.predict(obs, state=state, episode_start=start, deterministic=deterministic)
            obs, r, term, trunc, _ = env.step(action)
            total, start, done = total + r, np.zeros((1,), bool), term or trunc
        returns.append(total); off += bool(term and abs(obs[0]) > 2.4)
        obs, _ = env.reset()
    return returns, off


class Episodes(BaseCallback):
    def __init__(self):
        super().__init__(); self.returns, self.off = [], 0

    def _on_step(self):
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done and "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
                self.off += bool(not info.get("TimeLimit.truncated", False) and abs(info["terminal_observation"][0]) > 2.4)
        return True


def loop_episodes(path, replay, gradient_steps, exploration_std=None):
    agent = WorldModelAgent.load(path, env=gym.make(ENV), device="cpu")
    agent.load_replay_buffer(replay)
    agent.gradient_steps = gradient_steps
    if exploration_std is not None:
        agent.policy.planner.exploration_std = exploration_std
    cb = Episodes()
    agent.learn(n_steps, callback=cb, reset_num_timesteps=False)
    return cb.returns, cb.off


t0 = time.time()
agent = WorldModelAgent("MlpPolicy", ENV, seed=seed, device="cpu")
agent.learn(steps)
tmp = tempfile.mkdtemp()
path, replay = os.path.join(tmp, "agent.zip"), os.path.join(tmp, "replay.npz")
agent.save(path); agent.save_replay_buffer(replay)
rows = []
for name, run in [
    ("predict_det", lambda: predict_episodes(WorldModelAgent.load(path, device="cpu"), True)),
    ("predict_sto", lambda: predict_episodes(WorldModelAgent.load(path, device="cpu"), False)),
    ("loop_frozen", lambda: loop_episodes(path, replay, 0)),
    ("loop_frozen_no_noise", lambda: loop_episodes(path, replay, 0, 0.0)),
    ("loop", lambda: loop_episodes(path, replay, 3)),
]:
    returns, off = run()
    row = {"seed": seed, "steps": steps, "mode": name, "episodes": len(returns), "mean": round(float(np.mean(returns)), 1),
           "off_track": off, "returns": " / ".join(f"{r:.0f}" for r in returns), "wall": round(time.time() - t0)}
    rows.append(row); print(row, flush=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row)); w.writeheader(); w.writerows(rows)
