"""How well can the RSSM planner's terminal-value critic fit the Monte-Carlo returns of its own replay?

    python benchmarks/results/2026-12-06-rssm-cartpole/critic_refit.py SEED STEPS OUT_DIR

Trains ``RSSMAgent(mc_value_coef=0.3)`` on the CA11 cart-pole for STEPS steps (seed SEED), saves it and its replay in
OUT_DIR, filters the replayed stream through the RSSM (posterior mode) and reports the critic's fit to the stored
Monte-Carlo returns (mean absolute error, correlation, mean value); then refits a fresh critic on the same replay for
as many updates as training gave it (STEPS - learning_starts) / train_freq, under other critic settings.
Ran for benchmarks/README.md ("Results: the RSSM planner on the cart-pole, 2026-12-06"); output in critic_refit.txt.
"""

import sys
from pathlib import Path

import numpy as np
import torch

import ca11_gym  # noqa: F401
from ca11_agents import RSSMAgent

torch.set_num_threads(1)
seed, steps, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
agent = RSSMAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=seed, mc_value_coef=0.3)
agent.learn(steps)
agent.save(out / "agent.zip")
agent.save_replay_buffer(out / "replay")
data = agent.replay_buffer.data
n = steps
obs, ret, first, acts = (data[k][0, :n] for k in ("observations", "returns", "is_first", "actions"))
policy = agent.policy
with torch.no_grad():
    latent, prev, feats = policy.rssm.initial_state(1), torch.zeros(1, policy.actions.dim), []
    for t in range(n):
        o, f = torch.as_tensor(obs[t : t + 1]).float(), torch.tensor([float(first[t])])
        latent = policy.filter(o, latent, prev, f, True)
        feats.append(policy.rssm.features(latent))
        prev = torch.as_tensor(acts[t : t + 1]).float()
    feats = torch.cat(feats)
known = np.isfinite(ret)


def fit(critic: torch.nn.Module) -> str:
    with torch.no_grad():
        v = critic(feats).numpy()[known]
    return f"mean |v - return| {np.abs(v - ret[known]).mean():.1f}, corr {np.corrcoef(v, ret[known])[0, 1]:.2f}, mean v {v.mean():.1f}"


print(f"mean Monte-Carlo return {ret[known].mean():.1f} over {known.sum()} steps")
print(f"the critic trained online: {fit(policy.critic)}")
updates = (steps - agent.learning_starts) // agent.train_freq
for lr, mc, reps in [(3e-4, 0.3, 1), (3e-4, 0.0, 1), (3e-4, 1.0, 1), (1e-3, 0.3, 1), (1e-3, 1.0, 1), (3e-4, 0.3, 4),
                     (1e-3, 1.0, 4), (3e-3, 1.0, 1), (1e-3, 3.0, 1), (3e-3, 1.0, 4)]:  # fmt: skip
    torch.manual_seed(0)
    agent.mc_value_coef = mc
    policy.add_critic(1.0)
    agent.critic_optimizer = torch.optim.Adam(policy.critic.parameters(), lr=lr, eps=1e-6)
    for _ in range(updates):
        batch = agent.replay_buffer.sample(agent.batch_size, agent.seq_len, agent.device)
        with torch.no_grad():
            _, _, features = agent._model_loss(batch)
        for _ in range(reps):
            agent._train_value(batch, features)
    print(f"fresh critic, lr {lr}, mc_value_coef {mc}, {reps} critic step(s) per update: {fit(policy.critic)}")
