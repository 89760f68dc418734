"""Probe harness (not the library): DreamerAgent whose acting actor is an exponential moving average of the trained
actor (weight averaging, Nikishin et al. 2018), evaluated as the runner does (10 deterministic episodes on an env
seeded seed + 10000, every 500 steps). Usage: ema.py SEED STEPS TAU OUT.csv"""
import copy, csv, sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from ca11_agents import DreamerAgent
from ca11_agents.dreamer.critic import update_slow

seed, steps, tau, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ENV = "CA11/ContinuousCartPole-v0"
torch.set_num_threads(1)


class EmaDreamer(DreamerAgent):
    def _setup_model(self):
        super()._setup_model()
        self.fast_actor = self.policy.actor
        self.ema_actor = copy.deepcopy(self.policy.actor).requires_grad_(False)

    def train(self):
        self.policy.actor = self.fast_actor
        terms = super().train()
        update_slow(self.ema_actor, self.fast_actor, tau)
        self.policy.actor = self.ema_actor  # acting (and evaluation) with the average
        return terms


class Eval(BaseCallback):
    def __init__(self):
        super().__init__(); self.rows = []; self.next = 0
        self.env = Monitor(gym.make(ENV)); self.env.reset(seed=seed + 10000)
    def _on_step(self):
        if self.num_timesteps >= self.next:
            self.next += 500
            r, _ = evaluate_policy(self.model, self.env, n_eval_episodes=10, deterministic=True)
            self.rows.append({"seed": seed, "env_steps": self.num_timesteps, "eval_return_mean": r})
            with open(out, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(self.rows[0])); w.writeheader(); w.writerows(self.rows)
        return True


agent = EmaDreamer("MlpPolicy", ENV, seed=seed, device="cpu")
agent.learn(steps, callback=Eval())
