"""#11 probe: is the world model wrong about the plan it chose, or is the plan's end state valued wrongly?

Loads SNAPSHOT.zip, acts deterministically on the cart-pole (env seeded 10,001, the runner's evaluation seed for
seed 1) until step T, then plays the chosen 15-step plan open loop in a copy of the real env and prints the real
observations beside the model's (members' mean) at 1, 3, 5, 10 and 15 steps, and the critic's value of the plan's
last imagined latent. Usage (repository root):
    python benchmarks/results/2026-12-08-wm-hold/open_loop.py SNAPSHOT.zip T
"""
import copy, sys
import numpy as np, torch
import gymnasium as gym
import ca11_gym  # noqa: F401
from ca11_agents import WorldModelAgent

torch.set_num_threads(1)
agent = WorldModelAgent.load(sys.argv[1], device="cpu")
wm, T = agent.policy.world_model, int(sys.argv[2])
env = gym.make("CA11/ContinuousCartPole-v0")
obs, _ = env.reset(seed=10001)
state, start = None, np.ones((1,), bool)
for t in range(T + 1):
    action, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
    if t == T:
        # the plan carried in the state is already shifted: the action taken, then the rest of the chosen plan
        plan = np.concatenate([np.asarray(action, np.float32).reshape(1, 1, -1), state[0][:, :-1]], 1)[0]
        sim, real = copy.deepcopy(env.unwrapped), []
        for a in plan:
            real.append(sim.step(a)[0])
        with torch.no_grad():
            pred, _ = wm.rollout(torch.tensor(obs)[None], torch.tensor(plan)[None])
            E = wm.dynamics.ensemble_size
            z = wm.encode_observations(torch.tensor(obs)[None]).expand(E, 1, -1)
            for a in plan:
                z = wm.dynamics.propagate(z, torch.tensor(a)[None].expand(E, 1, -1), False)
            value = float(agent.policy.critic(z).mean())
        print(f"t={t} obs={np.round(obs, 3)} plan={np.round(plan[:, 0], 2)}")
        for h in (0, 2, 4, 9, 14):
            print(h + 1, "real", np.round(real[h], 3), "model", np.round(pred[0, h].numpy(), 3))
        print(f"critic's value of the plan's last imagined latent: {value:.1f}")
    start = np.zeros((1,), bool)
    obs, *_ = env.step(action)
