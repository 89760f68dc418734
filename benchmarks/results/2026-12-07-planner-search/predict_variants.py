"""#11 probe, after ``loop_vs_predict.py``: which part of ``predict(deterministic=True)`` makes the frozen planner
drift where the learner loop's acting holds the pole? Loads a saved WorldModelAgent and runs 5 episodes (env seeded
SEED + 10000, as the runner) acting in four ways, each through ``agent.policy.act``:
- ``det``: as ``predict(deterministic=True)``: candidates from a generator seeded afresh at every step, the
  members' means scored, the plan's mean taken;
- ``means_fresh_noise``: the members' means scored, candidates from torch's global generator, the plan's mean taken;
- ``sampled_fixed_noise``: the members sampled (TSinf), candidates from the generator seeded afresh, the mean taken;
- ``sampled_fresh_noise``: the members sampled, the global generator, the mean taken (the loop with
  ``exploration_std=0``), acted through ``predict(deterministic=False)``.
Usage (the agent that loop_vs_predict.py saved for seed 0 at 3,000 steps is kept as wm_seed0_3000.zip):
    python benchmarks/results/2026-12-07-planner-search/predict_variants.py AGENT.zip SEED OUT.csv
"""
import csv, sys, time

import gymnasium as gym
import numpy as np
import torch

import ca11_gym  # noqa: F401
from ca11_agents import WorldModelAgent

path, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ENV = "CA11/ContinuousCartPole-v0"
torch.set_num_threads(1)
torch.manual_seed(seed + 20000)


def run(agent, act):
    policy = agent.policy
    env, returns, off = gym.make(ENV), [], 0
    obs, _ = env.reset(seed=seed + 10000)
    for _ in range(5):
        plan, first, done, total = policy.initial_state(1), torch.ones(1), False, 0.0
        while not done:
            with torch.no_grad():
                action, plan = act(policy, torch.as_tensor(obs, dtype=torch.float32)[None], plan, first)
            obs, r, term, trunc, _ = env.step(policy.actions.to_env(action.numpy())[0])
            total, first, done = total + r, torch.zeros(1), term or trunc
        returns.append(total); off += bool(term and abs(obs[0]) > 2.4)
        obs, _ = env.reset()
    return returns, off


def variant(sample, fixed):
    def act(policy, obs, plan, first):
        z = policy.world_model.encode_observations(obs)
        score = lambda c: policy.score(z, c, sample=sample)  # noqa: E731
        saved = policy.planner.exploration_std
        policy.planner.exploration_std = 0.0
        try:
            action, nxt, _ = policy.planner.plan(score, policy.planner.reset(plan, first), deterministic=fixed)
        finally:
            policy.planner.exploration_std = saved
        return action, nxt
    return act


t0, rows = time.time(), []
for name, sample, fixed in [("det", False, True), ("means_fresh_noise", False, False),
                            ("sampled_fixed_noise", True, True), ("sampled_fresh_noise", True, False)]:
    returns, off = run(WorldModelAgent.load(path, device="cpu"), variant(sample, fixed))
    row = {"seed": seed, "mode": name, "mean": round(float(np.mean(returns)), 1), "off_track": off,
           "returns": " / ".join(f"{r:.0f}" for r in returns), "wall": round(time.time() - t0)}
    rows.append(row); print(row, flush=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row)); w.writeheader(); w.writerows(rows)
