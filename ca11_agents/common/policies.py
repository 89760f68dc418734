"""The policy object every ca11 learner shares: recurrent acting from a latent state, SB3's ``predict`` on top.

A learner's policy holds its networks and fills two hooks, :meth:`RecurrentLatentPolicy.initial_state` and
:meth:`RecurrentLatentPolicy.act`; the shared learner loop
(:meth:`~ca11_agents.common.base.ModelBasedAlgorithm.learn`) and ``predict`` call them. Observations, actions and
the carried state are handled here, once, for every space the learners support.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from ca11_agents.common.spaces import ActionAdapter, batch_observation, is_image, obs_as_tensor
from ca11_agents.common.threads import cpu_threads
from ca11_agents.world_models.encoders import check_observation_space
from ca11_agents.world_models.rssm import RecurrentStateSpaceModel, RSSMState

_ALIASES = {"vector": "MlpPolicy", "image": "CnnPolicy", "dict": "MultiInputPolicy"}

#: What ``predict`` carries between calls, per environment: the latent's arrays, then the previous action
#: (Dreamer: ``(deter, stoch, prev_action)``; the RSSM planner adds its plan, the world-model planner carries
#: ``(plan, prev_action)``).
RecurrentState = tuple[np.ndarray, ...]


class RecurrentLatentPolicy(BasePolicy):
    """Networks that act from a recurrent latent state (by default an :class:`RSSMState`).

    Args:
        observation_space: a vector or image ``Box``, or a ``Dict`` of them (see
            :func:`~ca11_agents.world_models.encoders.check_observation_space`).
        action_space: a flat ``Box`` with finite bounds, ``Discrete`` or flat ``MultiDiscrete``.
    """

    #: Set by the learner loop while it takes random actions (before ``learning_starts``): ``act`` must still
    #: filter the observation into the state, but may skip choosing an action (the loop discards it).
    warming_up: bool = False
    #: The kind of observation space the class is the SB3 alias for (``"vector"``: ``MlpPolicy``, ``"image"``:
    #: ``CnnPolicy``, ``"dict"``: ``MultiInputPolicy``); ``None`` takes any.
    alias_for: str | None = None

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        name = type(self).__name__
        check_observation_space(observation_space, name)
        kind = "vector"
        if isinstance(observation_space, spaces.Dict):
            kind = "dict"
        elif is_image(observation_space):
            kind = "image"
        if self.alias_for is not None and kind != self.alias_for:
            raise ValueError(
                f"{name} is for {self.alias_for} observations, got {kind} observations {observation_space}: "
                f"use {_ALIASES[kind]!r}"
            )
        self.actions = ActionAdapter(action_space, name)
        super().__init__(observation_space, action_space, squash_output=False)

    # ------------------------------------------------------------------------------------------------- hooks
    @abstractmethod
    def initial_state(self, n_envs: int) -> Any:
        """The latent state before any observation, for ``n_envs`` envs (tensors)."""

    @abstractmethod
    def act(
        self, obs: Any, state: Any, prev_action: torch.Tensor, is_first: torch.Tensor, deterministic: bool
    ) -> tuple[torch.Tensor, Any]:
        """Filter one observation per env into the latent state and choose learner actions ``(n, A)``.

        Args:
            obs: the observations as tensors ``(n, ...)`` (a dict of them for a Dict space), in their own dtypes.
            state: the latent state after the previous step.
            prev_action: the previous learner actions ``(n, A)``.
            is_first: ``(n,)`` 1 where an episode starts (the state is reset first).
            deterministic: act on the mode.
        """

    def stats(self) -> dict[str, float]:
        """Figures for the logger since the previous call (e.g. planned actions per second), by logger key."""
        return {}

    def pack_state(self, state: RSSMState) -> tuple[np.ndarray, ...]:
        """The latent as NumPy arrays for ``predict``'s carried state (an RSSM's ``deter`` and ``stoch``)."""
        return state.deter.cpu().numpy(), state.stoch.cpu().numpy()

    def unpack_state(self, arrays: tuple[np.ndarray, ...]) -> RSSMState:
        """Inverse of :meth:`pack_state`: filtering reads only ``h`` and ``z`` of the previous state."""
        deter, stoch = (torch.as_tensor(x, dtype=torch.float32, device=self.device) for x in arrays)
        return RSSMState(deter, stoch, stoch)

    # ---------------------------------------------------------------------------------------------- predict
    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is recurrent: use predict(observation, state, episode_start)")

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: RecurrentState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, RecurrentState]:
        """Actions for one observation or a batch ``(n, ...)``, in the env's own action space and dtype.

        Follows SB3's recurrent convention (as RecurrentPPO): ``state`` is what the previous call returned (``None``
        at the start), and the state of every env whose ``episode_start`` is true is reset first. Channel-last
        images are transposed to the policy's channel order (SB3's ``maybe_transpose``).
        """
        with cpu_threads(self.device):  # one intra-op thread on a CPU unless the user chose (common/threads.py)
            return self._predict_recurrent(observation, state, episode_start, deterministic)

    def _predict_recurrent(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: RecurrentState | None,
        episode_start: np.ndarray | None,
        deterministic: bool,
    ) -> tuple[np.ndarray, RecurrentState]:
        name = f"{type(self).__name__}.predict"
        batch, n, single = batch_observation(observation, self.observation_space, name)
        device = self.device
        if state is None:
            latent, prev_action = self.initial_state(n), torch.zeros(n, self.actions.dim, device=device)
            is_first = torch.ones(n, device=device)
        else:
            if not isinstance(state, tuple) or len(state) < 2:
                raise ValueError(f"{name}: state must be the tuple a previous call returned, got {type(state)}")
            *arrays, prev = state
            if any(np.shape(x)[0] != n for x in state):
                raise ValueError(f"{name}: state is for {np.shape(prev)[0]} envs, observations for {n}")
            latent = self.unpack_state(tuple(arrays))
            prev_action = torch.as_tensor(prev, dtype=torch.float32, device=device)
            starts = np.zeros(n) if episode_start is None else np.asarray(episode_start, dtype=np.float32)
            is_first = torch.as_tensor(starts.reshape(n), dtype=torch.float32, device=device)
        action, latent = self.act(obs_as_tensor(batch, device), latent, prev_action, is_first, deterministic)
        learner_action = action.cpu().numpy()
        env_action = self.actions.to_env(learner_action)
        return (env_action[0] if single else env_action), (*self.pack_state(latent), learner_action)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {"observation_space": self.observation_space, "action_space": self.action_space}


class RSSMLatentPolicy(RecurrentLatentPolicy):
    """A :class:`RecurrentLatentPolicy` whose latent is the state of an RSSM world model built from the spaces
    (the policy of every learner on an RSSM: Dreamer adds an actor and critics, the RSSM planner a planner).

    Args:
        observation_space: a vector or image ``Box``, or a ``Dict`` of them (the RSSM's encoder and decoder are
            built from it: an MLP for vectors, a CNN for images, one per key for a ``Dict``).
        action_space: a flat ``Box`` (rescaled to ``[-1, 1]``), ``Discrete`` or ``MultiDiscrete``.
        hidden_dim: the RSSM's deterministic state size.
        state_dim: the RSSM's stochastic state size (``groups * classes`` for categorical latents).
        classes: classes per categorical latent group.
        latent: ``"categorical"`` (DreamerV3) or ``"gaussian"``.
        units: width of the world model's MLPs.
        bins: two-hot buckets of the reward head.
        unimix: uniform mixture of the categorical latents.
        free_bits: KL clip in nats.
        symlog_obs: encode and reconstruct symlog vector observations.
        cnn_depth: channels of the first convolution of image encoders (doubled at each of the stages down to
            4x4) and of the last one of their decoders.
        rssm_kwargs: further arguments of :class:`RecurrentStateSpaceModel` (``layers``, ``dyn_scale``,
            ``rep_scale``, ``core`` by name, ``obs_norm``, ...), over the class's :attr:`rssm_defaults`.
    """

    #: The learner's own defaults of :class:`RecurrentStateSpaceModel` arguments (``rssm_kwargs`` overrides them).
    rssm_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        hidden_dim: int = 128,
        state_dim: int = 64,
        classes: int = 8,
        latent: str = "categorical",
        units: int = 128,
        bins: int = 255,
        unimix: float = 0.01,
        free_bits: float = 1.0,
        symlog_obs: bool = True,
        cnn_depth: int = 8,
        rssm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(observation_space, action_space)
        self.rssm = RecurrentStateSpaceModel(
            observation_space,
            self.actions.dim,
            state_dim,
            hidden_dim,
            latent=latent,
            classes=classes,
            units=units,
            reward_bins=bins,
            unimix=unimix,
            free_bits=free_bits,
            symlog_obs=symlog_obs,
            cnn_depth=cnn_depth,
            **{**self.rssm_defaults, **(rssm_kwargs or {})},
        )

    def initial_state(self, n_envs: int) -> RSSMState:
        """The state before any observation (as tensors)."""
        return self.rssm.initial_state(n_envs)

    def filter(
        self, obs: Any, state: RSSMState, prev_action: torch.Tensor, is_first: torch.Tensor, deterministic: bool
    ) -> RSSMState:
        """One observation per env folded into the latent (the posterior; its mode if ``deterministic``)."""
        return self.rssm.obs_step(state, prev_action, self.rssm.embed(obs), is_first, deterministic)

    def filter_final(self, obs: Any, state: RSSMState, action: torch.Tensor, cut: Sequence[int]) -> RSSMState:
        """The final observations ``obs`` of the episodes of envs ``cut`` (a time limit ended them) folded into the
        carried latent ``state`` after the last ``action`` of every env, at the posterior's mode (no draw from the
        torch generator that training uses): where the bootstrap of their stored returns is read."""
        latent = state.map(lambda x: x[cut])
        return self.filter(obs, latent, action[cut], torch.zeros(len(cut), device=action.device), True)
