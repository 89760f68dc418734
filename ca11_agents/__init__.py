"""ca11_agents: world models and the model-based learners built on them, behind Stable-Baselines3's interface."""

from ca11_agents.dreamer import DREAMER_PRESETS, DreamerAgent, DreamerPolicy, LatentActor, LatentCritic
from ca11_agents.planning import Planner, RSSMAgent, WorldModelAgent

__all__ = [
    "DREAMER_PRESETS",
    "DreamerAgent",
    "DreamerPolicy",
    "LatentActor",
    "LatentCritic",
    "Planner",
    "RSSMAgent",
    "WorldModelAgent",
]
