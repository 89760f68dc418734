"""Train the agents that world_model_view.py looks at: DreamerAgent on CA11/ContinuousCartPole-v0, seed 0, 3,000
steps, with KWARGS (JSON). Usage (from the repository root):
    python benchmarks/results/2026-12-07-dreamer-actor/train_for_view.py default3k.zip '{}'
    python benchmarks/results/2026-12-07-dreamer-actor/train_for_view.py norm3k.zip \
        '{"policy_kwargs": {"rssm_kwargs": {"obs_norm": true}}}'"""
import json, sys
import torch
import ca11_gym  # noqa: F401
from ca11_agents import DreamerAgent

torch.set_num_threads(1)
agent = DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, device="cpu", **json.loads(sys.argv[2]))
agent.learn(3000)
agent.save(sys.argv[1])
