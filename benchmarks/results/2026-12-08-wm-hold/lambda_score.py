"""#11 probe: score plans by a lambda-return of the critic's values along the imagined trajectory.

The snapshot's planner scores a plan by its discounted rewards plus the critic's value of the *last* imagined state
(TD-MPC's terminal value, ``plan_lambda=1``). This probe sets ``plan_lambda`` (acting only) to score by the
lambda-return over the plan
(G_H = V(s_H); G_t = r_t + gamma * c_t * ((1 - lambda) V(s_{t+1}) + lambda G_{t+1})), which also counts the
values of the states the plan passes through, and evaluates SNAPSHOT.zip with 10 deterministic episodes (env
seeded SEED) under each score. Usage (repository root):
    python benchmarks/results/2026-12-08-wm-hold/lambda_score.py SNAPSHOT.zip SEED LAMBDA [LAMBDA ...]
"""
import sys, time
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from stable_baselines3.common.evaluation import evaluate_policy
from ca11_agents import WorldModelAgent

torch.set_num_threads(1)
path, seed, lambdas = sys.argv[1], int(sys.argv[2]), [float(x) for x in sys.argv[3:]]


for lam in [None, *lambdas]:
    agent = WorldModelAgent.load(path, device="cpu")
    if lam is not None:
        agent.plan_lambda = lam  # the library's score (``discounted_return``)
    env = gym.make("CA11/ContinuousCartPole-v0")
    env.reset(seed=seed)
    t0 = time.time()
    returns, _ = evaluate_policy(agent, env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
    print(f"score={'terminal value (default)' if lam is None else f'lambda-return {lam}'}: mean {np.mean(returns):.1f} "
          f"min {np.min(returns):.0f} returns {' '.join(str(int(r)) for r in returns)} ({time.time() - t0:.0f} s)",
          flush=True)
