"""#11 diagnosis harness: why WorldModelAgent's cart-pole evaluations dip after it first balances the pole.

WorldModelAgent on the cart-pole with KWARGS; every 1,000 steps (the runner's schedule) 10 deterministic episodes
(env seeded seed + 10000 once, as the runner), under ``torch.random.fork_rng`` so that the probe leaves training's
random stream alone. Per probe it writes: the mean and lowest return; how each episode ended (the cart off the
track "x", the pole fallen "theta", the time limit); how the training episodes since the last probe ended; and, on
the evaluation episodes that failed, what the model saw coming: the continue model's probability on the real last
step and 15 steps before it, and the world model's open-loop view of the last 15 steps (the real actions from the
real state 15 steps before the end, each member's mean): the product of its continue probabilities (the planner's
survival weight) and its error in the cart's position at the end. Usage (from the repository root):
    python benchmarks/results/2026-12-07-wm-dips/diagnose_wm.py SEED STEPS OUT.csv '{}'
"""
import csv, json, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.callbacks import BaseCallback
from ca11_agents import WorldModelAgent

seed, steps, out, kwargs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
ENV, EVERY, K = "CA11/ContinuousCartPole-v0", 1000, 15
torch.set_num_threads(1)


def end_of(term, obs):
    return "limit" if not term else ("x" if abs(obs[0]) > 2.4 else "theta")


class Ends(gym.Wrapper):
    """Counts how the training episodes ended."""
    def __init__(self, env):
        super().__init__(env); self.ends = []

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        if term or trunc:
            self.ends.append(end_of(term, obs))
        return obs, r, term, trunc, info


def episodes(agent):
    """10 deterministic episodes; returns, ends, and each episode's observations and actions."""
    env, rows = gym.make(ENV), []
    obs, _ = env.reset(seed=seed + 10000)
    for _ in range(10):
        state, start, done, observations, actions = None, np.ones((1,), bool), False, [obs], []
        while not done:
            action, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
            obs, r, term, trunc, _ = env.step(action)
            observations.append(obs); actions.append(np.asarray(action, np.float32).reshape(-1))
            start, done = np.zeros((1,), bool), term or trunc
        rows.append((len(actions), end_of(term, obs), np.array(observations), np.array(actions)))
        obs, _ = env.reset()
    return rows


@torch.no_grad()
def model_view(agent, observations, actions):
    """On a failed episode: p(continue) on the real last step and K steps before; the open-loop product of
    continue probabilities over the last K steps and the error in x at the end (members' means)."""
    wm = agent.policy.world_model
    o = torch.as_tensor(observations, dtype=torch.float32)
    a = torch.as_tensor(actions, dtype=torch.float32)
    z = wm.encode_observations(o[:-1])
    cont = wm.predict_continue(z, a)  # (T,)
    start = max(0, len(actions) - K)
    zk = wm.encode_observations(o[start:start + 1]).expand(wm.dynamics.ensemble_size, 1, -1)
    survive = torch.ones(wm.dynamics.ensemble_size, 1)
    for t in range(start, len(actions)):
        act = a[t:t + 1].expand(wm.dynamics.ensemble_size, 1, -1)
        survive = survive * wm.predict_continue(zk, act)
        zk = wm.dynamics.propagate(zk, act, False)
    x_end = wm.decode_latents(zk)[..., 0].mean()
    return float(cont[-1]), float(cont[max(0, len(actions) - 1 - K)]), float(survive.mean()), float(x_end - o[-1, 0])


class Probe(BaseCallback):
    def __init__(self, train_env):
        super().__init__(); self.rows, self.next, self.train_env, self.seen = [], EVERY, train_env, 0

    def _on_step(self):
        if self.num_timesteps < self.next:
            return True
        self.next += EVERY
        with torch.random.fork_rng():
            eps = episodes(self.model)
        ends = [e for _, e, _, _ in eps]
        returns = [n for n, _, _, _ in eps]
        train = self.train_env.ends[self.seen:]; self.seen = len(self.train_env.ends)
        row = {"step": self.num_timesteps, "eval_mean": float(np.mean(returns)), "eval_min": min(returns)}
        for kind in ("x", "theta", "limit"):
            row[f"eval_ends_{kind}"] = ends.count(kind)
        for kind in ("x", "theta", "limit"):
            row[f"train_ends_{kind}"] = train.count(kind)
        row["train_terminals_total"] = sum(e != "limit" for e in self.train_env.ends)
        views = [model_view(self.model, o, a) for n, e, o, a in eps if e != "limit"]
        for i, name in enumerate(("p_cont_last", f"p_cont_{K}_before", f"open_loop_survival_{K}", "open_loop_x_err")):
            row[name] = float(np.mean([v[i] for v in views])) if views else float("nan")
        row["wall"] = time.time() - t0
        self.rows.append(row); print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row)); w.writeheader(); w.writerows(self.rows)
        return True


t0 = time.time()
train_env = Ends(gym.make(ENV))
agent = WorldModelAgent("MlpPolicy", train_env, seed=seed, device="cpu", **kwargs)
agent.learn(steps, callback=Probe(train_env))
