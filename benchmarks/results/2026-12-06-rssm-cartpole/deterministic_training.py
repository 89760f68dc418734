"""RSSMAgent on the CA11 cart-pole with the training actions taken as the evaluation's (the refined plan's mean,
no exploration noise), against the default (the plan's mean plus its refined std as noise).

    python benchmarks/results/2026-12-06-rssm-cartpole/deterministic_training.py SEED det|noisy

Evaluates 10 deterministic episodes after 1,000, 2,000 and 3,000 steps (SB3's evaluate_policy, env seeded
10,000 + SEED), then counts the replay's terminated episodes by where they ended. A probe for
benchmarks/README.md ("Results: the RSSM planner on the cart-pole, 2026-12-06"), not a library option.
"""

import sys

import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import ca11_gym  # noqa: F401
from ca11_agents import RSSMAgent

torch.set_num_threads(1)
seed, mode = int(sys.argv[1]), sys.argv[2]
env_id = "CA11/ContinuousCartPole-v0"
agent = RSSMAgent("MlpPolicy", env_id, seed=seed)
if mode == "det":
    act = agent.policy.act
    agent.policy.act = lambda obs, state, prev, first, deterministic: act(obs, state, prev, first, True)
for k in range(3):
    agent.learn(1000, reset_num_timesteps=k == 0)
    env = make_vec_env(env_id, n_envs=1, seed=10_000 + seed)
    mean, _ = evaluate_policy(agent, env, n_eval_episodes=10, deterministic=True)
    print(seed, mode, (k + 1) * 1000, round(float(mean), 1), flush=True)
data, n = agent.replay_buffer.data, agent.num_timesteps
obs, ends = data["observations"][0, :n], np.flatnonzero(data["terminated"][0, :n])
edge = int((np.abs(obs[ends, 0]) > 2.0).sum())
print(f"terminated episodes {len(ends)}, at the track's edge (|x| > 2 at the last step) {edge}, by the pole {len(ends) - edge}")
