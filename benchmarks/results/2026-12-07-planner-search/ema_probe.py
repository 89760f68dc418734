"""#11 probe: does WorldModelAgent's cart-pole dip come from planning with one noisy snapshot of the model?

Hypothesis: the training episodes (about 3 updates per env step, so the model changes under them) reach the time
limit while the deterministic evaluations of a frozen model drift off the track (2026-12-07-wm-dips). If a frozen
snapshot carries a bias that pushes the cart one way, a running average of the weights (Polyak, as SWA and target
networks) should plan with less of it. The default learner trains as usual; a callback keeps an exponential moving
average of every floating tensor of ``agent.policy`` (rate TAU per env step). At each probe the snapshot and the
average are evaluated on the same 10 deterministic episodes (env seeded seed + 10000, as the runner), under
``torch.random.fork_rng`` so that training's random stream is untouched. Usage (repository root):

    python benchmarks/results/2026-12-07-planner-search/ema_probe.py SEED STEPS TAU OUT.csv [PROBE,PROBE,...]
"""
import csv, sys, time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

import ca11_gym  # noqa: F401
from ca11_agents import WorldModelAgent

seed, steps, tau, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ENV = "CA11/ContinuousCartPole-v0"
PROBES = tuple(int(p) for p in sys.argv[5].split(",")) if len(sys.argv) > 5 else (2000, 3000, 4000, 5000)
torch.set_num_threads(1)


def evaluate(agent):
    env, returns, off = gym.make(ENV), [], 0
    obs, _ = env.reset(seed=seed + 10000)
    for _ in range(10):
        state, start, done, total = None, np.ones((1,), bool), False, 0.0
        while not done:
            action, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
            obs, r, term, trunc, _ = env.step(action)
            total, start, done = total + r, np.zeros((1,), bool), term or trunc
        returns.append(total); off += bool(term and abs(obs[0]) > 2.4)
        obs, _ = env.reset()
    return float(np.mean(returns)), off


class Ema(BaseCallback):
    def __init__(self):
        super().__init__(); self.avg, self.rows, self.train_returns = None, [], []

    def _on_step(self):
        sd = self.model.policy.state_dict()
        if self.avg is None:
            self.avg = {k: v.detach().clone() for k, v in sd.items()}
        for k, v in sd.items():
            if v.is_floating_point():
                self.avg[k].lerp_(v.detach(), tau)
            else:
                self.avg[k].copy_(v)
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.train_returns.append(float(info["episode"]["r"]))
        if self.num_timesteps in PROBES:
            with torch.random.fork_rng():
                snap, snap_off = evaluate(self.model)
                current = {k: v.detach().clone() for k, v in sd.items()}
                self.model.policy.load_state_dict(self.avg)
                ema, ema_off = evaluate(self.model)
                self.model.policy.load_state_dict(current)
            recent = self.train_returns[-3:]
            row = {"step": self.num_timesteps, "snapshot": snap, "snapshot_off_track": snap_off, "ema": ema,
                   "ema_off_track": ema_off, "train_last3": " / ".join(f"{r:.0f}" for r in recent),
                   "wall": round(time.time() - t0)}
            self.rows.append(row); print(row, flush=True)
            with open(out, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(row)); w.writeheader(); w.writerows(self.rows)
        return True


t0 = time.time()
agent = WorldModelAgent("MlpPolicy", ENV, seed=seed, device="cpu")
agent.learn(steps, callback=Ema())
