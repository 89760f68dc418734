"""#17 diagnosis harness: DreamerAgent on the cart-pole with KWARGS, every 500 steps: 10 deterministic episodes (env
seeded seed + 10000, as the runner), the return scale, the critic's values on replayed states binned by |x|, the mean
recent Monte-Carlo return there, the actor's saturation. Usage (from the repository root):
    python benchmarks/results/2026-12-07-dreamer-critic/diagnose_critic.py 2 10000 OUT.csv \
        '{"mc_max_age": 1000, "mc_value_coef": 1.0}'"""
import csv, json, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from ca11_agents import DreamerAgent

seed, steps, out, kwargs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
ENV = "CA11/ContinuousCartPole-v0"
torch.set_num_threads(1)
BINS = [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 2.5)]


class Probe(BaseCallback):
    def __init__(self):
        super().__init__(); self.rows = []; self.next = 0

    def _on_step(self):
        if self.num_timesteps < self.next:
            return True
        self.next += 500
        agent, row = self.model, {"step": self.num_timesteps}
        env = gym.make(ENV); env.reset(seed=seed + 10000)
        r, lengths = evaluate_policy(agent, env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
        row["det"] = float(np.mean(r))
        row["scale"] = float(agent.return_norm.range)
        rb = agent.replay_buffer
        if rb.count >= 32:
            with torch.no_grad():
                batch = rb.sample(256, 32, agent.device)
                _, _, post = agent.policy.rssm.loss_terms(batch)
                feats = agent.policy.rssm.features(post)
                values = agent.policy.critic(feats).numpy()
                mean, _ = agent.policy.actor._params(feats)
                row["saturated"] = float((torch.tanh(mean).abs() > 0.95).float().mean())
            x = np.abs(batch["observations"][..., 0].numpy())
            age = agent.mc_max_age or 10**9
            recent = rb.sample(256, 32, agent.device, age)
            xr, ret = np.abs(recent["observations"][..., 0].numpy()), recent["returns"].numpy()
            for lo, hi in BINS:
                m = (x >= lo) & (x < hi)
                row[f"v_{lo}"] = float(values[m].mean()) if m.any() else float("nan")
                m = (xr >= lo) & (xr < hi) & np.isfinite(ret)
                row[f"mc_{lo}"] = float(ret[m].mean()) if m.any() else float("nan")
        row["wall"] = time.time() - t0
        self.rows.append(row); print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.rows[-1])); w.writeheader()
            w.writerows([{k: r.get(k) for k in self.rows[-1]} for r in self.rows])
        return True


t0 = time.time()
agent = DreamerAgent("MlpPolicy", ENV, seed=seed, device="cpu", **kwargs)
agent.learn(steps, callback=Probe())
agent.save(out.replace(".csv", ".zip"))
