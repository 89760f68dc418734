"""#11 probe: does the world model's continue model know where the cart-pole ends?

For each SNAPSHOT, the continue probability of a still cart (x_dot 0, theta_dot -0.5, no push) at pole angles
-0 / -0.15 / -0.19 / -0.205 / -0.22 rad (the env ends past 0.2095) and cart positions 0 / 2.3 / 2.45 (the end: 2.4),
printed row by row in that order (angle outer, position inner). Usage (repository root):
    python benchmarks/results/2026-12-08-wm-hold/continue_grid.py SNAPSHOT.zip [SNAPSHOT.zip ...]
"""
import sys, numpy as np, torch, ca11_gym
from ca11_agents import WorldModelAgent
torch.set_num_threads(1)
for path in sys.argv[1:]:
    wm = WorldModelAgent.load(path, device="cpu").policy.world_model
    out = []
    for th in (0.0, 0.15, 0.19, 0.205, 0.22):
        for x in (0.0, 2.3, 2.45):
            o = torch.tensor([[x, 0.0, -th, -0.5]]); a = torch.zeros(1, 1)
            with torch.no_grad():
                out.append(f"{float(wm.predict_continue(wm.encode_observations(o), a)):.3f}")
    print(path.split('/')[-1], "p_cont (theta, x) grid:", " ".join(out))
