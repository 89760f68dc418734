"""ca11_agents: world models and the model-based learners built on them, behind Stable-Baselines3's interface."""

from ca11_agents.dreamer import DREAMER_PRESETS, DreamerAgent, DreamerPolicy, LatentActor, LatentCritic

__all__ = ["DREAMER_PRESETS", "DreamerAgent", "DreamerPolicy", "LatentActor", "LatentCritic"]
