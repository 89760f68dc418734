"""#11 probe: what a saved WorldModelAgent believes along one deterministic cart-pole episode.

Loads SNAPSHOT.zip, runs one deterministic episode (env seeded SEED) and writes per step: the real observation, the
action, the continue model's probability for the real step, the critic's value of the real state's latent, the
Monte-Carlo discounted return actually paid from that step on (the episode's own rewards), and the score of the
chosen plan split into its discounted rewards and its terminal value (members' means). Usage (repository root):
    python benchmarks/results/2026-12-08-wm-hold/inside_episode.py SNAPSHOT.zip SEED OUT.csv
"""
import csv, sys
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from ca11_agents import WorldModelAgent

path, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
agent = WorldModelAgent.load(path, device="cpu")
policy, wm = agent.policy, agent.policy.world_model
env = gym.make("CA11/ContinuousCartPole-v0")
obs, _ = env.reset(seed=seed)
rows, state, start, done = [], None, np.ones((1,), bool), False
while not done:
    action, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
    with torch.no_grad():
        o = torch.as_tensor(obs, dtype=torch.float32)[None]
        a = torch.as_tensor(np.asarray(action, np.float32).reshape(1, -1))
        z = wm.encode_observations(o)
        cont = float(wm.predict_continue(z, a))
        value = float(policy.critic(z)) if policy.critic is not None else float("nan")
        plan = torch.as_tensor(state[0], dtype=torch.float32)  # the next plan (shifted): the chosen plan's tail
        terminal = policy._terminal()
        ze = z.expand(wm.dynamics.ensemble_size, 1, -1)
        step = policy._step(False)
        plan_full = torch.cat([a[:, None], plan[:, :-1]], 1)  # the action taken, then the rest of the plan
        rewards_only = policy.discounted_return(step, ze, plan_full, None).mean()
        with_value = policy.discounted_return(step, ze, plan_full, terminal).mean() if terminal else rewards_only
    rows.append({"t": len(rows), "x": obs[0], "x_dot": obs[1], "theta": obs[2], "theta_dot": obs[3],
                 "action": float(a[0, 0]), "p_continue": cont, "value": value,
                 "plan_rewards": float(rewards_only), "plan_terminal": float(with_value - rewards_only)})
    start = np.zeros((1,), bool)
    obs, r, term, trunc, _ = env.step(action)
    done = term or trunc
g = agent.gamma
ret = 0.0
for row in reversed(rows):  # every reward is +1
    ret = 1.0 + g * ret
    row["mc_return"] = ret
with open(out, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
print(f"{len(rows)} steps, ended {'terminated' if term else 'truncated'} at x={obs[0]:.2f} theta={obs[2]:.3f}")
