"""#17 diagnosis: default DreamerAgent on the cart-pole, evaluated every 500 steps both deterministically (the
benchmark's protocol) and stochastically (the behaviour policy), with the actor's statistics on replayed states and
the continue head's prediction on the stored terminations. Saves the agent beside OUT.csv (OUT.zip).

    python diagnose.py SEED STEPS OUT.csv [SATURATION_COEF]
"""
import csv, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from ca11_agents import DreamerAgent

seed, steps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ENV = "CA11/ContinuousCartPole-v0"
torch.set_num_threads(1)

class Probe(BaseCallback):
    def __init__(self):
        super().__init__(); self.rows = []; self.next = 0
    def _on_step(self):
        if self.num_timesteps < self.next:
            return True
        self.next += 500
        agent = self.model
        row = {"step": self.num_timesteps}
        for det in (True, False):
            env = gym.make(ENV); env.reset(seed=seed + 10000)
            r, _ = evaluate_policy(agent, env, n_eval_episodes=10, deterministic=det, return_episode_rewards=True)
            row["det" if det else "stoch"] = float(np.mean(r)); row[("det" if det else "stoch") + "_min"] = float(np.min(r))
        rb = agent.replay_buffer
        if rb.count >= 32:
            with torch.no_grad():
                batch = rb.sample(64, 32, agent.device)
                _, _, post = agent.policy.rssm.loss_terms(batch)
                feats = agent.policy.rssm.features(post.flatten())
                mean, std = agent.policy.actor._params(feats)
                row["abs_mean"] = float(mean.abs().mean()); row["std"] = float(std.mean())
                row["saturated"] = float((torch.tanh(mean).abs() > 0.95).float().mean())
                row["value"] = float(agent.policy.critic(feats).mean())
            term = rb.data["terminated"][:, : rb.count]
            row["terminations"] = int(term.sum())
            # continue head on stored terminations: the posterior at each terminal step, from a 32-step window ending there
            envs, idx = np.nonzero(term)
            idx = idx[idx >= 31]; envs = envs[: len(idx)]
            if len(idx):
                pick = np.random.default_rng(0).choice(len(idx), min(64, len(idx)), replace=False)
                steps_ = idx[pick][:, None] - 31 + np.arange(32)
                b = {k: torch.as_tensor(v[envs[pick][:, None], steps_]) for k, v in rb.data.items()}
                from ca11_agents.common.spaces import join_observation
                b = join_observation(b)
                with torch.no_grad():
                    _, _, post = agent.policy.rssm.loss_terms(b)
                    f = agent.policy.rssm.features(post)[:, -1]
                    c = agent.policy.rssm.cont(f, b["actions"][:, -1].float())
                row["cont_at_term"] = float(c.mean())
        row["wall"] = time.time() - t0
        self.rows.append(row); print(row, flush=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=sorted({k for r in self.rows for k in r}, key=lambda k: list(self.rows[-1]).index(k) if k in self.rows[-1] else 99)); w.writeheader(); w.writerows(self.rows)
        return True

t0 = time.time()
agent = DreamerAgent("MlpPolicy", ENV, seed=seed, device="cpu", **({"saturation_coef": float(sys.argv[4])} if len(sys.argv) > 4 else {}))
agent.learn(steps, callback=Probe())
agent.save(out.replace(".csv", ".zip"))
