"""#17 diagnosis harness: is the deterministic policy the one Dreamer trained? DreamerAgent on the cart-pole with
KWARGS; every 500 steps: 10 deterministic and 10 stochastic episodes (env seeded seed + 10000, as the runner; the
stochastic ones also seed torch), how each deterministic episode ended (the cart off the track, the pole fallen, or
the time limit), the training episodes' mean return since the last row, and on replayed states the actor's
pre-squash std and its saturated share. Usage (from the repository root):
    python benchmarks/results/2026-12-07-dreamer-actor/diagnose_actor.py 0 10000 OUT.csv '{}' [SCALE]
SCALE (a JSON list, optional) multiplies each observation dimension before the agent sees it (a
``TransformObservation``, in training and evaluation alike): '[1, 1, 10, 4]' gives the pole's angle and angular
velocity, whose spread while balancing is a 30th and a 7th of the cart's, about the cart's."""
import csv, json, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.callbacks import BaseCallback
from ca11_agents import DreamerAgent

seed, steps, out, kwargs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
SCALE = np.array(json.loads(sys.argv[5]) if len(sys.argv) > 5 else [1, 1, 1, 1], dtype=np.float32)
ENV = "CA11/ContinuousCartPole-v0"


def make():
    env = gym.make(ENV)
    if np.all(SCALE == 1):
        return env
    box = env.observation_space
    space = gym.spaces.Box(box.low * SCALE, box.high * SCALE, dtype=np.float32)
    return gym.wrappers.TransformObservation(env, lambda o: (o * SCALE).astype(np.float32), space)
torch.set_num_threads(1)


def episodes(agent, deterministic):
    """10 episodes on one env seeded once; returns and how each ended ("x", "theta" or "limit")."""
    env, returns, ends = make(), [], []
    obs, _ = env.reset(seed=seed + 10000)
    for _ in range(10):
        state, start, total, done = None, np.ones((1,), bool), 0.0, False
        while not done:
            action, state = agent.predict(obs, state=state, episode_start=start, deterministic=deterministic)
            obs, r, term, trunc, _ = env.step(action)
            total, start, done = total + r, np.zeros((1,), bool), term or trunc
        ends.append("limit" if not term else ("x" if abs(obs[0] / SCALE[0]) > 2.4 else "theta"))
        returns.append(total)
        obs, _ = env.reset()
    return returns, ends


class Probe(BaseCallback):
    def __init__(self):
        super().__init__(); self.rows = []; self.next = 0; self.seen = 0

    def _on_step(self):
        if self.num_timesteps < self.next:
            return True
        self.next += 500
        agent, row = self.model, {"step": self.num_timesteps}
        det, ends = episodes(agent, True)
        row["det"] = float(np.mean(det))
        row["det_min"] = float(np.min(det))
        for kind in ("x", "theta", "limit"):
            row[f"ends_{kind}"] = ends.count(kind)
        torch.manual_seed(seed + 20000)
        row["stoch"] = float(np.mean(episodes(agent, False)[0]))
        train = [ep["r"] for ep in list(agent.ep_info_buffer)]
        row["train_episodes"] = float(np.mean(train[-5:])) if train else float("nan")
        rb = agent.replay_buffer
        if rb.count >= 32:
            with torch.no_grad():
                batch = rb.sample(256, 32, agent.device)
                _, _, post = agent.policy.rssm.loss_terms(batch)
                mean, std = agent.policy.actor._params(agent.policy.rssm.features(post))
                row["std"] = float(std.mean())
                row["abs_mean"] = float(mean.abs().mean())
                row["saturated"] = float((torch.tanh(mean).abs() > 0.95).float().mean())
        row["wall"] = time.time() - t0
        self.rows.append(row); print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.rows[-1])); w.writeheader()
            w.writerows([{k: r.get(k) for k in self.rows[-1]} for r in self.rows])
        return True


t0 = time.time()
agent = DreamerAgent("MlpPolicy", make(), seed=seed, device="cpu", **kwargs)
agent.learn(steps, callback=Probe())
