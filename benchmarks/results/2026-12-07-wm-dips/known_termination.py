"""#11 probe of what it would take: WorldModelAgent on the cart-pole planning with the env's own termination rule.

mbrl-lib's PETS cart-pole example (the issue's anchor) gives its planner the true termination function
(``termination_fns.cartpole``) and runs trials of 200 steps. Here the default WorldModelAgent learns as usual, but its
planner's continue probability is replaced by the env's rule applied to each member's predicted next observation
(the decoded mean latent): 0 where |x| > 2.4 or |theta| > the pole's limit, else 1. The learned continue model still
trains; only the planner stops using it. Every 1,000 steps, 10 deterministic episodes (env seeded seed + 10000 once,
as the runner) under ``torch.random.fork_rng``. Usage (from the repository root):
    python benchmarks/results/2026-12-07-wm-dips/known_termination.py SEED STEPS OUT.csv [KWARGS]
KWARGS (JSON, optional): WorldModelAgent arguments, e.g. '{"horizon": 30}'.
"""
import csv, json, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from ca11_gym.envs.cartpole import THETA_THRESHOLD, X_THRESHOLD
from stable_baselines3.common.callbacks import BaseCallback
from ca11_agents import WorldModelAgent

seed, steps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
kwargs = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
ENV, EVERY = "CA11/ContinuousCartPole-v0", 1000
torch.set_num_threads(1)


def known_continue(wm):
    def predict_continue(z, action):
        nxt = wm.decode_latents(wm.dynamics.propagate(z, action, False))  # (E, N, 4): x, x_dot, theta, theta_dot
        ends = (nxt[..., 0].abs() > X_THRESHOLD) | (nxt[..., 2].abs() > THETA_THRESHOLD)
        return (~ends).to(z.dtype)
    return predict_continue


class Probe(BaseCallback):
    def __init__(self):
        super().__init__(); self.rows, self.next = [], EVERY

    def _on_step(self):
        if self.num_timesteps < self.next:
            return True
        self.next += EVERY
        env, returns, off = gym.make(ENV), [], 0
        obs, _ = env.reset(seed=seed + 10000)
        with torch.random.fork_rng():
            for _ in range(10):
                state, start, done, total = None, np.ones((1,), bool), False, 0
                while not done:
                    action, state = self.model.predict(obs, state=state, episode_start=start, deterministic=True)
                    obs, r, term, trunc, _ = env.step(action)
                    total, start, done = total + r, np.zeros((1,), bool), term or trunc
                returns.append(total); off += int(term and abs(obs[0]) > X_THRESHOLD)
                obs, _ = env.reset()
        row = {"step": self.num_timesteps, "eval_mean": float(np.mean(returns)), "eval_min": min(returns),
               "off_track": off, "wall": time.time() - t0}
        self.rows.append(row); print(row, flush=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row)); w.writeheader(); w.writerows(self.rows)
        return True


t0 = time.time()
agent = WorldModelAgent("MlpPolicy", ENV, seed=seed, device="cpu", **kwargs)
agent.policy.world_model.predict_continue = known_continue(agent.policy.world_model)
agent.learn(steps, callback=Probe())
