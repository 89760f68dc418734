"""#11 probe: the world model's open-loop error over 15 random actions, snapshot by snapshot.

60 segments of 15 uniform random actions from the cart-pole's reset states (numpy seed 0), and each SNAPSHOT's
mean absolute error of ``rollout`` (members' mean, anchored at the first observation) in the pole's angle, its
angular velocity and the cart's position. Usage (repository root):
    python benchmarks/results/2026-12-08-wm-hold/model_error.py SNAPSHOT.zip [SNAPSHOT.zip ...]
"""
import sys, glob, numpy as np, torch, gymnasium as gym, ca11_gym
from ca11_agents import WorldModelAgent
torch.set_num_threads(1)
# fixed test set: 40 segments of 15 random actions from near-upright states
env = gym.make("CA11/ContinuousCartPole-v0"); rng = np.random.default_rng(0)
segs = []
while len(segs) < 60:
    obs, _ = env.reset(seed=int(rng.integers(1e6)))
    o, a = [obs], []
    for t in range(15):
        act = rng.uniform(-1, 1, size=(1,)).astype(np.float32)
        obs, r, term, trunc, _ = env.step(act); a.append(act); o.append(obs)
        if term: break
    if len(a) == 15: segs.append((np.array(o, np.float32), np.array(a, np.float32)))
O = torch.tensor(np.stack([s[0] for s in segs])); A = torch.tensor(np.stack([s[1] for s in segs]))
for path in sys.argv[1:]:
    wm = WorldModelAgent.load(path, device="cpu").policy.world_model
    with torch.no_grad():
        pred, _ = wm.rollout(O[:, 0], A)  # (B, H, O)
    err = (pred - O[:, 1:]).abs()
    print(path.split("/")[-1], "theta err h1 %.4f h5 %.4f h15 %.4f | theta_dot h1 %.3f h15 %.3f | x h15 %.3f" % (
        err[:, 0, 2].mean(), err[:, 4, 2].mean(), err[:, 14, 2].mean(), err[:, 0, 3].mean(), err[:, 14, 3].mean(), err[:, 14, 0].mean()))
