"""#11 diagnosis harness: does WorldModelAgent's cart-pole drift come from how it acts in evaluation?

Trains the default WorldModelAgent (seed SEED) on the cart-pole and every 1,000 steps, from 2,000 on, runs 10
episodes (env seeded seed + 10000 once, as the runner) in three ways of acting, under ``torch.random.fork_rng`` so
that training's random stream is left alone:

- ``means``: ``predict(deterministic=True)``, the runner's evaluation: the plan scored on the members' means and its
  mean action taken;
- ``sampled``: the plan scored by sampling the members (PETS's TSinf, as in training) and its mean action taken
  (``deterministic=False`` with the planner's ``exploration_std`` at 0 for the episodes);
- ``training``: ``predict(deterministic=False)``: as the agent acts while it trains (sampled members, and the
  action drawn around the plan's mean with the refined plan's spread).

For each, the mean and lowest return and how many episodes ended with the cart off the track. Usage:
    python benchmarks/results/2026-12-07-wm-dips/acting_modes.py SEED STEPS OUT.csv
"""
import csv, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.callbacks import BaseCallback
from ca11_agents import WorldModelAgent

seed, steps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ENV, EVERY = "CA11/ContinuousCartPole-v0", 1000
torch.set_num_threads(1)


def episodes(agent, mode):
    env, returns, off = gym.make(ENV), [], 0
    planner, saved = agent.policy.planner, agent.policy.planner.exploration_std
    planner.exploration_std = 0.0 if mode == "sampled" else saved
    obs, _ = env.reset(seed=seed + 10000)
    try:
        for _ in range(10):
            state, start, done, total = None, np.ones((1,), bool), False, 0
            while not done:
                action, state = agent.predict(obs, state=state, episode_start=start, deterministic=mode == "means")
                obs, r, term, trunc, _ = env.step(action)
                total, start, done = total + r, np.zeros((1,), bool), term or trunc
            returns.append(total); off += int(term and abs(obs[0]) > 2.4)
            obs, _ = env.reset()
    finally:
        planner.exploration_std = saved
    return returns, off


class Probe(BaseCallback):
    def __init__(self):
        super().__init__(); self.rows, self.next = [], 2 * EVERY

    def _on_step(self):
        if self.num_timesteps < self.next:
            return True
        self.next += EVERY
        row = {"step": self.num_timesteps}
        for mode in ("means", "sampled", "training"):
            with torch.random.fork_rng():
                torch.manual_seed(seed + 20000)
                returns, off = episodes(self.model, mode)
            row[f"{mode}_mean"], row[f"{mode}_min"], row[f"{mode}_off_track"] = float(np.mean(returns)), min(returns), off
        row["wall"] = time.time() - t0
        self.rows.append(row); print(row, flush=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row)); w.writeheader(); w.writerows(self.rows)
        return True


t0 = time.time()
WorldModelAgent("MlpPolicy", ENV, seed=seed, device="cpu").learn(steps, callback=Probe())
