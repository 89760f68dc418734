"""Dreamer: actor-critic learning in the imagination of an RSSM world model."""

from ca11_agents.dreamer.actor import CategoricalLatentActor, LatentActor
from ca11_agents.dreamer.critic import LatentCritic
from ca11_agents.dreamer.dreamer import DreamerAgent
from ca11_agents.dreamer.policies import DreamerCnnPolicy, DreamerMultiInputPolicy, DreamerPolicy
from ca11_agents.dreamer.presets import DREAMER_PRESETS

__all__ = [
    "DREAMER_PRESETS",
    "CategoricalLatentActor",
    "DreamerAgent",
    "DreamerCnnPolicy",
    "DreamerMultiInputPolicy",
    "DreamerPolicy",
    "LatentActor",
    "LatentCritic",
]
