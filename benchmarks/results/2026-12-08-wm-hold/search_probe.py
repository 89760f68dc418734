"""#11 probe: do WorldModelAgent's cart-pole dips come from its search or from its model?

Trains WorldModelAgent on the cart-pole with KWARGS for STEPS, saving the agent every 1,000 steps (training's random
stream untouched: saving draws nothing). Then each snapshot is evaluated with 10 deterministic episodes (env seeded
seed + 10000, as the runner) under several search settings that change only acting: the default (64 candidates,
4 iterations), 4x the candidates, 2x the iterations. Where the last snapshot exists already, training is skipped and
only the evaluations run (``SNAPDIR=`` names another run's snapshots). Usage (from the repository root):
    python benchmarks/results/2026-12-08-wm-hold/search_probe.py SEED STEPS OUT.csv '{...}' [VARIANTS_JSON]
"""
import csv, json, os, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from ca11_agents import WorldModelAgent

seed, steps, out, kwargs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
VARIANTS = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {
    "default": {}, "candidates_256": {"candidates": 256, "elites": 32}, "iterations_8": {"iterations": 8}}
ENV, EVERY = "CA11/ContinuousCartPole-v0", 1000
torch.set_num_threads(1)
snapdir = os.environ.get("SNAPDIR", os.path.splitext(out)[0] + "_snapshots")  # SNAPDIR: another run's
os.makedirs(snapdir, exist_ok=True)


class Save(BaseCallback):
    def __init__(self):
        super().__init__(); self.next = EVERY

    def _on_step(self):
        if self.num_timesteps >= self.next:
            self.model.save(os.path.join(snapdir, f"step{self.next}.zip")); self.next += EVERY
        return True


if not os.path.exists(os.path.join(snapdir, f"step{steps}.zip")):
    t0 = time.time()
    agent = WorldModelAgent("MlpPolicy", ENV, seed=seed, device="cpu", **kwargs)
    agent.learn(steps, callback=Save())
    print(f"trained {steps} steps in {time.time() - t0:.0f} s", flush=True)
rows = []
for step in range(EVERY, steps + 1, EVERY):
    for name, planner_kwargs in VARIANTS.items():
        loaded = WorldModelAgent.load(os.path.join(snapdir, f"step{step}.zip"), device="cpu")
        base = dict(loaded.planner_kwargs)
        base.update(planner_kwargs)
        loaded.planner_kwargs = base
        loaded.policy.planner = loaded._make_planner(loaded.action_space)
        env = gym.make(ENV)
        env.reset(seed=seed + 10000)
        t = time.time()
        returns, _ = evaluate_policy(loaded, env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
        row = {"step": step, "variant": name, "mean": float(np.mean(returns)), "min": float(np.min(returns)),
               "returns": " ".join(str(int(r)) for r in returns), "eval_s": round(time.time() - t, 1)}
        rows.append(row); print(row, flush=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row)); w.writeheader(); w.writerows(rows)
