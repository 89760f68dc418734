"""Trains DreamerAgent on the cart-pole and saves it for scripts/probe_agent.py:

    python train_for_probe.py SEED STEPS OUT.zip ['{"policy_kwargs": {"rssm_kwargs": {"termination_weight": 10}}}']
    python scripts/probe_agent.py OUT.zip --env CA11/ContinuousCartPole-v0 --seed 10000 --every 25
"""
import json
import sys

import torch

import ca11_gym  # noqa: F401
from ca11_agents import DreamerAgent

torch.set_num_threads(1)
seed, steps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
kwargs = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
agent = DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=seed, device="cpu", **kwargs)
agent.learn(steps)
agent.save(out)
