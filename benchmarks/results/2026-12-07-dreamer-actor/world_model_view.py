"""#17: how well does a trained DreamerAgent's world model see the cart-pole? Runs its deterministic policy for
episodes of CA11/ContinuousCartPole-v0 (env seeded 10000, as the runner's evaluation), filters them through the
RSSM and prints, per observation dimension (x, x_dot, theta, theta_dot): the spread of the observations, the
posterior reconstruction's mean absolute error, and the open-loop prediction's error 1, 5 and 15 steps ahead (the
prior rolled out from the posterior with the actions actually taken). Usage (from the repository root):
    python benchmarks/results/2026-12-07-dreamer-actor/world_model_view.py AGENT.zip [EPISODES]"""
import sys
import numpy as np, torch, gymnasium as gym
import ca11_gym  # noqa: F401
from ca11_agents import DreamerAgent

torch.set_num_threads(1)
agent = DreamerAgent.load(sys.argv[1], device="cpu")
episodes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
rssm, env, H = agent.policy.rssm, gym.make("CA11/ContinuousCartPole-v0"), 15
obs, _ = env.reset(seed=10000)
spread, recon, ahead, lengths = [], [], {1: [], 5: [], 15: []}, []
for _ in range(episodes):
    O, A, state, start, done = [obs], [], None, np.ones((1,), bool), False
    while not done:
        action, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, _, term, trunc, _ = env.step(action)
        A.append(np.asarray(action, np.float32).reshape(-1)); O.append(obs)
        start, done = np.zeros((1,), bool), term or trunc
    T = len(A)
    lengths.append(T)
    o = torch.tensor(np.array(O[:T]), dtype=torch.float32)[None]
    a = torch.tensor(np.array(A), dtype=torch.float32)[None]
    first = torch.zeros(1, T, dtype=torch.bool)
    first[0, 0] = True
    with torch.no_grad():
        post, _ = rssm.observe(o, a, first)
        recon.append(np.abs(rssm.decode(rssm.features(post))[0].numpy() - o[0].numpy()))
        spread.append(o[0].numpy())
        for t in range(0, T - H, 5):
            start_state = post.map(lambda x: x[:, t])
            pred = rssm.decode(rssm.features(rssm.rollout(start_state, a[:, t:t + H], deterministic=True)))[0].numpy()
            for k in ahead:
                ahead[k].append(np.abs(pred[k - 1] - O[t + k]))
    obs, _ = env.reset()
print(f"{sys.argv[1]}: {episodes} deterministic episodes, lengths {lengths}")
print("dimension      x      x_dot  theta  theta_dot")
print("spread (std)  ", " ".join(f"{v:.4f}" for v in np.concatenate(spread).std(0)))
print("posterior err ", " ".join(f"{v:.4f}" for v in np.concatenate(recon).mean(0)))
for k, errs in ahead.items():
    print(f"{k:2d} steps ahead", " ".join(f"{v:.4f}" for v in np.mean(errs, 0)))
