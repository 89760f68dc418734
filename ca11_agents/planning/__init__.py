"""Learners that plan in latent space: CEM/MPPI model-predictive control through a learned world model."""

from ca11_agents.planning.agents import RSSMAgent, WorldModelAgent
from ca11_agents.planning.planner import Planner
from ca11_agents.planning.policies import (
    RSSMPlannerCnnPolicy,
    RSSMPlannerMultiInputPolicy,
    RSSMPlannerPolicy,
    WorldModelPolicy,
)

__all__ = [
    "Planner",
    "RSSMAgent",
    "RSSMPlannerCnnPolicy",
    "RSSMPlannerMultiInputPolicy",
    "RSSMPlannerPolicy",
    "WorldModelAgent",
    "WorldModelPolicy",
]
