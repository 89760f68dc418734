"""#11 probe: score plans by a lambda-return of the critic's values along the imagined trajectory.

The default planner scores a plan by its discounted rewards plus the critic's value of the *last* imagined state
(TD-MPC's terminal value). This probe replaces that score, in acting only, by the lambda-return over the plan
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


def lambda_return(policy, lam):
    def score(step, state, actions, terminal=None):
        if terminal is None:
            return type(policy).discounted_return(policy, step, state, actions, None)
        rewards, conts, values = [], [], []
        for t in range(actions.shape[-2]):
            reward, cont, state = step(state, actions[..., t, :])
            rewards.append(reward); conts.append(cont); values.append(terminal(state))
        g = values[-1]
        for t in reversed(range(len(rewards))):
            nxt = values[t] if t < len(rewards) - 1 else g
            g = rewards[t] + policy.gamma * conts[t] * ((1.0 - lam) * nxt + lam * g) if t < len(rewards) - 1 \
                else rewards[t] + policy.gamma * conts[t] * g
        return g
    return score


for lam in [None, *lambdas]:
    agent = WorldModelAgent.load(path, device="cpu")
    if lam is not None:
        agent.policy.discounted_return = lambda_return(agent.policy, lam)
    env = gym.make("CA11/ContinuousCartPole-v0")
    env.reset(seed=seed)
    t0 = time.time()
    returns, _ = evaluate_policy(agent, env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
    print(f"score={'terminal value (default)' if lam is None else f'lambda-return {lam}'}: mean {np.mean(returns):.1f} "
          f"min {np.min(returns):.0f} returns {' '.join(str(int(r)) for r in returns)} ({time.time() - t0:.0f} s)",
          flush=True)
