"""World models: the feed-forward VAE world model of the notebook's section 1 and the RSSM of section 2.

- :class:`VariationalAutoencoder`, :class:`LatentDynamicsModel`, :class:`RewardModel` and :class:`WorldModel`,
  which assembles them;
- :class:`RecurrentStateSpaceModel` and its :class:`RSSMState`, shared with Dreamer, with encoders and decoders
  built from the observation space (:func:`build_encoder`, :func:`build_decoder`: MLP, CNN, one per ``Dict`` key),
  a dynamics core chosen by name (:data:`DYNAMICS_CORES`: the GRU or a :class:`TransformerCore`) and a
  representation loss chosen by name (:data:`REPRESENTATIONS`: reconstruction, contrastive, redundancy reduction);
- :class:`WorldModelTrainer` and :class:`RSSMTrainer`, the training drivers (one :class:`Trainer` base).
"""

from ca11_agents.world_models.cores import DYNAMICS_CORES, NormGRUCell, TransformerCore
from ca11_agents.world_models.dynamics import Ensemble, LatentDynamicsModel, interval_coverage
from ca11_agents.world_models.encoders import build_decoder, build_encoder, check_observation_space
from ca11_agents.world_models.representation import (
    REPRESENTATIONS,
    ContrastiveRepresentation,
    RedundancyReduction,
    build_representation,
)
from ca11_agents.world_models.reward_model import RewardModel
from ca11_agents.world_models.rssm import RecurrentStateSpaceModel, RSSMState
from ca11_agents.world_models.trainers import RSSMTrainer, Trainer, WorldModelTrainer
from ca11_agents.world_models.vae import RunningMeanStd, VariationalAutoencoder
from ca11_agents.world_models.world_model import WorldModel

__all__ = [
    "VariationalAutoencoder",
    "LatentDynamicsModel",
    "RewardModel",
    "WorldModel",
    "RecurrentStateSpaceModel",
    "RSSMState",
    "Trainer",
    "WorldModelTrainer",
    "RSSMTrainer",
    "Ensemble",
    "RunningMeanStd",
    "build_encoder",
    "build_decoder",
    "check_observation_space",
    "DYNAMICS_CORES",
    "NormGRUCell",
    "TransformerCore",
    "REPRESENTATIONS",
    "ContrastiveRepresentation",
    "RedundancyReduction",
    "build_representation",
    "interval_coverage",
]
