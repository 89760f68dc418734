"""The Recurrent State-Space Model (PlaNet, Hafner et al., 2019) with DreamerV3's refinements.

A latent state ``s_t = (h_t, z_t)`` has a deterministic recurrent part ``h_t`` (a GRU) and a stochastic part
``z_t`` (categorical, as in DreamerV2/V3, or Gaussian, as in PlaNet/Dreamer)::

    h_t = f(h_{t-1}, z_{t-1}, a_{t-1})        recurrent step (GRU with LayerNorm)
    z_t ~ q(z_t | h_t, o_t)                   posterior: uses the observation
    z_t ~ p(z_t | h_t)                        prior: imagines without it
    o_t ~ p(o_t | h_t, z_t)                   decoder (in symlog space)
    r_t ~ p(r_t | h_t, z_t, a_t)              reward head (two-hot symlog)
    c_t ~ p(c_t | h_t, z_t, a_t)              continue head: 0 where a_t *terminated* the episode

Sequence batches follow the notebook's (and SB3's) alignment, batch-major ``(B, T, ...)``::

    t           0     1     2     3            a window of T = 4 steps
    obs         o0    o1    o2    o3           o_t seen before acting
    actions     a0    a1    a2    a3           a_t taken after seeing o_t
    rewards     r0    r1    r2    r3           r_t received for a_t
    terminated  0     1     0     0            a_1 ended the episode (o2 starts a new one)
    is_first    1     0     1     0            the state is reset before o_t (window starts count as resets)

so the reward and continue heads read ``(s_t, a_t)``; truncation (a time limit) is not termination and leaves
``c_t = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ca11_agents.common.distributions import (
    TwoHotSymlog,
    bernoulli_nll,
    categorical_kl,
    gaussian_kl,
    gaussian_params,
    sample_one_hot,
    unimix_probs,
)
from ca11_agents.common.losses import check_termination_weight, kl_balanced, termination_weights
from ca11_agents.common.nets import mlp
from ca11_agents.world_models.cores import DYNAMICS_CORES, NormGRUCell
from ca11_agents.world_models.encoders import ObservationNormalizer, build_encoder
from ca11_agents.world_models.representation import build_representation

__all__ = ["DYNAMICS_CORES", "NormGRUCell", "RSSMState", "RecurrentStateSpaceModel", "stack_states"]


def _leaves(space: spaces.Space) -> Iterator[spaces.Space]:
    yield from (space.spaces.values() if isinstance(space, spaces.Dict) else [space])


class RSSMState(NamedTuple):
    """A (batch of) latent state(s); every field has the same leading dimensions, e.g. ``(B,)`` or ``(B, T)``."""

    deter: Tensor  #: (..., deter_dim) the dynamics core's state; its first hidden_dim entries are h
    stoch: Tensor  #: (..., stoch_dim) sampled stochastic latent z (flattened one-hots for categorical latents)
    logits: Tensor  #: distribution parameters of z: (..., groups, classes) or (..., 2 * state_dim)

    def map(self, fn: Callable[[Tensor], Tensor]) -> RSSMState:
        """Apply ``fn`` to every field (e.g. ``lambda x: x.detach()`` or a reshape)."""
        return RSSMState(*(fn(x) for x in self))

    def flatten(self) -> RSSMState:
        """``(B, T, ...) -> (B*T, ...)`` for every field."""
        return self.map(lambda x: x.reshape(-1, *x.shape[2:]))  # (B, T, ...) -> (B*T, ...)


def stack_states(states: list[RSSMState], dim: int = 1) -> RSSMState:
    """Stack a list of states along a new time axis (``dim=1`` gives batch-major ``(B, T, ...)``)."""
    return RSSMState(*(torch.stack(fields, dim=dim) for fields in zip(*states)))


class RecurrentStateSpaceModel(nn.Module):
    """An RSSM world model: encoder, recurrent dynamics, prior and posterior, and the decoder, reward and continue
    heads, with the DreamerV3 loss (:meth:`loss`).

    Three parts plug in (:mod:`ca11_agents.world_models.encoders` builds the first two from a space):

    * the **encoder** (observations -> embeddings; an MLP for vectors, a CNN for images, one per key for dicts);
    * the **representation loss**, the ``decoder``: by name (``representation``: ``"reconstruction"``,
      ``"contrastive"``, ``"redundancy"``; :mod:`~ca11_agents.world_models.representation`) or any module with
      ``loss(features, obs) -> (...)`` (``loss(features, obs, embed)`` if it has ``needs_embed = True``) and
      ``forward(features)`` for predictions;
    * the **dynamics core**: a name in :data:`DYNAMICS_CORES` (``"gru"``: :class:`NormGRUCell`, ``"transformer"``:
      :class:`~ca11_agents.world_models.cores.TransformerCore`) or a factory ``core(input_dim, hidden_dim,
      **core_kwargs)`` building a module ``(x (B, I), state (B, S)) -> state (B, S)`` whose state's first
      ``hidden_dim`` entries are ``h`` and whose int ``state_size`` is ``S`` (``hidden_dim`` if it has none). The
      whole state is :attr:`RSSMState.deter`; :meth:`hidden` reads ``h`` from it.

    Args:
        obs_dim: observation size, or the observation space (a ``Box`` or a ``Dict``) to build the encoder and
            decoder from.
        action_dim: action size (actions are continuous vectors, normalised to ``[-1, 1]`` by the agents).
        state_dim: size of the stochastic latent ``z``; for categorical latents ``state_dim = groups * classes``.
        hidden_dim: size of the deterministic recurrent state ``h``.
        latent: ``"categorical"`` (DreamerV2/V3) or ``"gaussian"`` (PlaNet, Dreamer).
        classes: classes per categorical group (``state_dim`` must be a multiple of it).
        units: width of every MLP (encoder, decoder, heads, prior, posterior); defaults to ``hidden_dim``.
        layers: hidden layers of the encoder, decoder and reward/continue heads.
        reward_bins: two-hot buckets of the reward head.
        unimix: uniform mixture of the categorical latents (DreamerV3: 0.01).
        free_bits: KL clip in nats (DreamerV3: 1.0).
        dyn_scale: weight of the dynamics KL (DreamerV3: 0.5).
        rep_scale: weight of the representation KL (DreamerV3: 0.1).
        symlog_obs: encode and reconstruct ``symlog(obs)`` (DreamerV3), so that no observation scale needs tuning.
        obs_norm: encode and reconstruct vector observations standardised per dimension by running statistics
            (:class:`~ca11_agents.world_models.encoders.ObservationNormalizer`, updated by every :meth:`loss_terms`
            computed with gradients, i.e. by training) instead of ``symlog``, so that a dimension with a small
            spread (a cart-pole's pole angle) weighs in the reconstruction loss as much as a wide one. Images are
            unaffected.
        cnn_depth: channels of the first convolution of image encoders and decoders (doubled at each stage).
        encoder: a module replacing the one built from ``obs_dim`` (it needs an int attribute ``embed_dim``).
        decoder: a module replacing the decoder built from ``obs_dim`` (see above).
        core: the dynamics core, by name or factory (see above).
        core_kwargs: further arguments of the core (e.g. ``{"context": 16, "layers": 1, "heads": 4}``).
        representation: the representation loss by name, when ``decoder`` is not given (see above).
        representation_kwargs: further arguments of the representation loss's class.
        termination_weight: weight of the continue head's loss on the steps that terminated, against 1 on the
            others. Terminations are rare (a cart-pole that drifts off its track ends once in 200-500 steps), so
            with 1 (DreamerV3) the head may keep predicting "continues" even at the step that ends the episode; a
            larger weight makes it predict ends more readily (a pessimistic bias where it is unsure).
    """

    def __init__(
        self,
        obs_dim: int | spaces.Space,
        action_dim: int,
        state_dim: int = 32,
        hidden_dim: int = 128,
        *,
        latent: str = "categorical",
        classes: int = 8,
        units: int | None = None,
        layers: int = 1,
        reward_bins: int = 255,
        unimix: float = 0.01,
        free_bits: float = 1.0,
        dyn_scale: float = 0.5,
        rep_scale: float = 0.1,
        symlog_obs: bool = True,
        cnn_depth: int = 16,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        core: str | Callable[..., nn.Module] = "gru",
        core_kwargs: dict[str, Any] | None = None,
        representation: str = "reconstruction",
        representation_kwargs: dict[str, Any] | None = None,
        termination_weight: float = 1.0,
        obs_norm: bool = False,
    ) -> None:
        super().__init__()
        space = obs_dim if isinstance(obs_dim, spaces.Space) else None
        obs_dim = int(sum(math.prod(s.shape) for s in _leaves(space))) if space is not None else obs_dim
        if min(obs_dim, action_dim, state_dim, hidden_dim) < 1:
            raise ValueError(
                "RecurrentStateSpaceModel: obs_dim, action_dim, state_dim and hidden_dim must be positive, got "
                f"{obs_dim}, {action_dim}, {state_dim}, {hidden_dim}"
            )
        if latent not in ("categorical", "gaussian"):
            raise ValueError(f"RecurrentStateSpaceModel: latent must be 'categorical' or 'gaussian', got {latent!r}")
        if latent == "categorical" and state_dim % classes:
            raise ValueError(
                f"RecurrentStateSpaceModel: state_dim={state_dim} must be a multiple of classes={classes} "
                "for categorical latents (state_dim = groups * classes)"
            )
        self.obs_dim, self.action_dim, self.state_dim, self.hidden_dim = obs_dim, action_dim, state_dim, hidden_dim
        self.latent, self.classes, self.groups = latent, classes, state_dim // classes
        self.unimix, self.free_bits, self.dyn_scale, self.rep_scale = unimix, free_bits, dyn_scale, rep_scale
        self.symlog_obs = symlog_obs
        self.termination_weight = check_termination_weight("RecurrentStateSpaceModel", termination_weight)
        units = units or hidden_dim
        latent_params = state_dim if latent == "categorical" else 2 * state_dim
        hidden = [units] * layers

        space = space if space is not None else spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        # Standardised vectors are not also symlogged; the normaliser holds buffers only (no random draws).
        self.obs_norm = ObservationNormalizer(space) if obs_norm else None
        parts = dict(units=units, layers=layers, symlog_obs=symlog_obs and not obs_norm, cnn_depth=cnn_depth)
        # Built in this order (encoder, dynamics, posterior, decoder, heads): the order parameters draw their
        # initial values from torch's generator, kept so that training stays bit-identical across versions.
        self.encoder = encoder if encoder is not None else build_encoder(space, **parts)
        embed_dim = int(self.encoder.embed_dim)
        self.img_in = mlp(state_dim + action_dim, 0, [units])
        if isinstance(core, str) and core not in DYNAMICS_CORES:
            raise ValueError(f"RecurrentStateSpaceModel: unknown core {core!r} (known: {sorted(DYNAMICS_CORES)})")
        # `gru` names the core whatever it is: the name is in every checkpoint's state dict.
        self.gru = (DYNAMICS_CORES[core] if isinstance(core, str) else core)(units, hidden_dim, **(core_kwargs or {}))
        self.deter_dim = int(getattr(self.gru, "state_size", hidden_dim))
        self.prior_net = mlp(hidden_dim, latent_params, [units])
        self.post_net = mlp(hidden_dim + embed_dim, latent_params, [units])
        if decoder is None:
            decoder = build_representation(
                representation, space, self.feature_dim, hidden_dim, embed_dim, parts, **(representation_kwargs or {})
            )
        self.decoder = decoder
        self.twohot = TwoHotSymlog(reward_bins)
        # Zero-initialised output: the first reward predictions are exactly 0 (DreamerV3).
        self.reward_head = mlp(self.feature_dim + action_dim, reward_bins, hidden, out_scale=0.0)
        self.cont_head = mlp(self.feature_dim + action_dim, 1, hidden)

    # ----------------------------------------------------------------------------------------------- latent states
    @property
    def feature_dim(self) -> int:
        """Size of :meth:`features` (``hidden_dim + state_dim``)."""
        return self.hidden_dim + self.state_dim

    def initial_state(self, batch_size: int) -> RSSMState:
        """The all-zero state that every episode starts from (before its first observation)."""
        device = next(self.parameters()).device
        logits_shape = (self.groups, self.classes) if self.latent == "categorical" else (2 * self.state_dim,)
        return RSSMState(
            torch.zeros(batch_size, self.deter_dim, device=device),
            torch.zeros(batch_size, self.state_dim, device=device),
            torch.zeros(batch_size, *logits_shape, device=device),
        )

    def hidden(self, deter: Tensor) -> Tensor:
        """``h`` ``(..., hidden_dim)`` from the core's state ``(..., deter_dim)`` (the same tensor for the GRU)."""
        return deter if self.deter_dim == self.hidden_dim else deter[..., : self.hidden_dim]

    def features(self, state: RSSMState) -> Tensor:
        """``(..., feature_dim)``: the concatenation ``[h, z]`` that every head and the agents read."""
        return torch.cat([self.hidden(state.deter), state.stoch], -1)

    def _latent(self, raw: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """From a prior/posterior net's output to ``(stoch, logits)``."""
        if self.latent == "categorical":
            logits = raw.reshape(*raw.shape[:-1], self.groups, self.classes)  # (..., G*C) -> (..., G, C)
            one_hot = sample_one_hot(unimix_probs(logits, self.unimix), deterministic)
            return one_hot.reshape(*raw.shape[:-1], self.state_dim), logits  # (..., G, C) -> (..., G*C)
        mean, std = gaussian_params(raw)
        stoch = mean if deterministic else mean + std * torch.randn_like(std)
        return stoch, raw

    def embed(self, obs: Tensor | dict[str, Tensor]) -> Tensor:
        """Encode observations ``(..., *obs_shape)`` (a dict of them for a Dict space) ``-> (..., embed_dim)``."""
        return self.encoder(obs if self.obs_norm is None else self.obs_norm.normalize(obs))

    def _reset(self, state: RSSMState, prev_action: Tensor, is_first: Tensor) -> tuple[RSSMState, Tensor]:
        keep = (1.0 - is_first.float()).unsqueeze(-1)  # (B,) -> (B, 1)
        return RSSMState(state.deter * keep, state.stoch * keep, state.logits), prev_action * keep

    def img_step(self, state: RSSMState, action: Tensor, deterministic: bool = False) -> RSSMState:
        """One imagined step: ``s_t, a_t -> s_{t+1}`` drawn from the prior. Shapes ``(B, ...)``."""
        deter = self.gru(self.img_in(torch.cat([state.stoch, action], -1)), state.deter)
        stoch, logits = self._latent(self.prior_net(self.hidden(deter)), deterministic)
        return RSSMState(deter, stoch, logits)

    def obs_step(
        self,
        state: RSSMState,
        prev_action: Tensor,
        embed: Tensor,
        is_first: Tensor,
        deterministic: bool = False,
    ) -> RSSMState:
        """One filtering step: ``s_{t-1}, a_{t-1}, o_t -> s_t`` from the posterior (the prior is skipped: acting
        needs only the posterior). ``embed`` comes from :meth:`embed`; ``is_first`` (B,) resets the state first."""
        state, prev_action = self._reset(state, prev_action, is_first)
        deter = self.gru(self.img_in(torch.cat([state.stoch, prev_action], -1)), state.deter)
        stoch, logits = self._latent(self.post_net(torch.cat([self.hidden(deter), embed], -1)), deterministic)
        return RSSMState(deter, stoch, logits)

    def observe(
        self,
        obs: Tensor,
        actions: Tensor,
        is_first: Tensor,
        state: RSSMState | None = None,
        prev_action: Tensor | None = None,
        embeds: Tensor | None = None,
    ) -> tuple[RSSMState, RSSMState]:
        """Filter a batch of sequences.

        Args:
            obs: ``(B, T, *obs_shape)`` (a dict of them for a Dict space).
            actions: ``(B, T, action_dim)``, ``a_t`` taken after ``o_t`` (only ``a_0 .. a_{T-2}`` enter the
                states; ``a_{T-1}`` is for the reward and continue heads).
            is_first: ``(B, T)``, true where the state is reset before ``o_t``.
            state: the state before ``o_0`` (default: :meth:`initial_state`).
            prev_action: the action taken before ``o_0`` (default: zeros).
            embeds: ``embed(obs)``, if already computed.

        Returns:
            ``(posterior, prior)`` states, each ``(B, T, ...)``.
        """
        batch, steps = actions.shape[:2]
        obs_lead = {tuple(x.shape[:2]) for x in (obs.values() if isinstance(obs, dict) else [obs])}
        if obs_lead != {(batch, steps)} or is_first.shape != (batch, steps):
            raise ValueError(
                f"observe: obs {sorted(obs_lead)}, actions {tuple(actions.shape)} and is_first "
                f"{tuple(is_first.shape)} must share (B, T)"
            )
        state = self.initial_state(batch) if state is None else state
        prev_action = torch.zeros_like(actions[:, 0]) if prev_action is None else prev_action
        embeds = self.embed(obs) if embeds is None else embeds  # all steps batched: only the recurrence is sequential
        posts = []
        for t in range(steps):
            state = self.obs_step(state, prev_action, embeds[:, t], is_first[:, t])
            posts.append(state)
            prev_action = actions[:, t]
        post = stack_states(posts)
        prior_stoch, prior_logits = self._latent(self.prior_net(self.hidden(post.deter)))  # batched over (B, T)
        return post, RSSMState(post.deter, prior_stoch, prior_logits)

    def rollout(self, state: RSSMState, actions: Tensor, deterministic: bool = False) -> RSSMState:
        """Open-loop imagination: the prior states ``(B, H, ...)`` reached after each of ``actions`` ``(B, H, A)``
        from ``state`` ``(B, ...)``."""
        states = []
        for t in range(actions.shape[1]):
            state = self.img_step(state, actions[:, t], deterministic)
            states.append(state)
        return stack_states(states)

    def rollout_policy(
        self, state: RSSMState, policy: Callable[[Tensor], Tensor], horizon: int
    ) -> tuple[RSSMState, Tensor]:
        """Closed-loop imagination under ``policy`` (features ``(B, F)`` -> actions ``(B, A)``).

        Returns:
            ``(states, actions)``: the start state and the ``horizon`` imagined states ``(B, H + 1, ...)``, and the
            actions taken in the first ``H`` of them ``(B, H, A)``.
        """
        states, actions = [state], []
        for _ in range(horizon):
            action = policy(self.features(state))
            state = self.img_step(state, action)
            states.append(state)
            actions.append(action)
        return stack_states(states), torch.stack(actions, 1)

    # ---------------------------------------------------------------------------------------------------- heads
    def decode(self, features: Tensor) -> Tensor:
        """Predicted observation ``(..., *obs_shape)`` (a dict for a Dict space) in observation units."""
        pred = self.decoder(features)
        return pred if self.obs_norm is None else self.obs_norm.denormalize(pred)

    def reward(self, features: Tensor, actions: Tensor) -> Tensor:
        """Expected reward ``(...)`` for taking ``actions`` in the states with these ``features``."""
        return self.twohot.mean(self.reward_head(torch.cat([features, actions], -1)))

    def cont(self, features: Tensor, actions: Tensor) -> Tensor:
        """Probability ``(...)`` that the episode goes on after taking ``actions`` in these states."""
        return torch.sigmoid(self.cont_head(torch.cat([features, actions], -1)).squeeze(-1).float())

    def kl(self, post_logits: Tensor, prior_logits: Tensor) -> tuple[Tensor, Tensor]:
        """``(KL(sg(post) || prior), KL(post || sg(prior)))`` per state, for :func:`kl_balanced`."""
        if self.latent == "categorical":
            post, prior = unimix_probs(post_logits, self.unimix), unimix_probs(prior_logits, self.unimix)
            return categorical_kl(post.detach(), prior), categorical_kl(post, prior.detach())
        return gaussian_kl(post_logits.detach(), prior_logits), gaussian_kl(post_logits, prior_logits.detach())

    # ----------------------------------------------------------------------------------------------------- loss
    def loss_terms(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], RSSMState]:
        """The world-model loss of DreamerV3 (eqs. 4-6) on a sequence batch (see the module docstring).

        Returns:
            ``(loss, terms, posterior)``: the scalar loss, its per-term means (tensors, for logging), and the
            posterior states ``(B, T, ...)`` from which agents start imagining.
        """
        obs, actions = batch["observations"], batch["actions"]
        if actions.dim() != 3:
            raise ValueError(f"RSSM loss: actions must be (B, T, dim), got {tuple(actions.shape)}")
        rewards = batch["rewards"]
        rewards = rewards.squeeze(-1) if rewards.dim() == 3 else rewards
        terminated = batch.get("terminated")
        terminated = torch.zeros_like(rewards) if terminated is None else terminated.float().reshape(rewards.shape)
        is_first = batch.get("is_first")
        is_first = torch.zeros_like(rewards) if is_first is None else is_first.float().reshape(rewards.shape).clone()
        is_first[:, 0] = 1.0  # a window starts from the initial state, wherever it lies in its episode

        target = obs
        if self.obs_norm is not None:
            if torch.is_grad_enabled():  # training: the statistics follow the replayed observations
                self.obs_norm.update(obs)
            target = self.obs_norm.normalize(obs)
        embeds = self.encoder(target)  # = self.embed(obs), standardising only once
        post, prior = self.observe(obs, actions, is_first, embeds=embeds)
        feats = self.features(post)
        if getattr(self.decoder, "needs_embed", False):
            recon = self.decoder.loss(feats, target, embeds, is_first)
        else:
            recon = self.decoder.loss(feats, target)
        head_in = torch.cat([feats, actions], -1)
        reward = self.twohot.loss(self.reward_head(head_in), rewards)
        cont = bernoulli_nll(self.cont_head(head_in).squeeze(-1), 1.0 - terminated)
        weights = termination_weights(terminated, self.termination_weight)
        if weights is not None:
            cont = cont * weights
        kl, dyn, rep = kl_balanced(
            *self.kl(post.logits, prior.logits),
            free_bits=self.free_bits,
            dyn_scale=self.dyn_scale,
            rep_scale=self.rep_scale,
        )
        loss = (recon + reward + cont + kl).mean()
        terms = {
            "loss": loss,
            "reconstruction_loss": recon.mean(),
            "reward_loss": reward.mean(),
            "continue_loss": cont.mean(),
            "kl_loss": kl.mean(),
            "dyn_kl": dyn.mean(),
            "rep_kl": rep.mean(),
        }
        return loss, terms, post

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """:meth:`loss_terms` with the terms as floats: ``(loss, metrics)``."""
        loss, terms, _ = self.loss_terms(batch)
        return loss, {k: float(v.detach()) for k, v in terms.items()}

    # -------------------------------------------------------------------------------------- the notebook's API
    def imagine(self, obs: Tensor, action: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The notebook's one-step call: observe ``o_t`` in recurrent state ``h_t``, take ``a_t``, and predict.

        Args:
            obs: ``(B, 1, obs_dim)``; action: ``(B, 1, action_dim)``; hidden: ``(B, deter_dim)``, the recurrent
                state returned by the previous call (zeros at the start of an episode; ``deter_dim = hidden_dim``
                for the GRU core).

        Returns:
            ``(next_obs_pred (B, 1, obs_dim), reward_pred (B, 1), next_hidden (B, deter_dim))``: the decoded prior
            prediction of ``o_{t+1}``, the predicted ``r_t`` and ``h_{t+1}``.
        """
        if obs.dim() != 3 or action.dim() != 3 or obs.shape[1] != 1 or action.shape[1] != 1:
            raise ValueError(
                f"imagine: obs and action must be (B, 1, dim), got {tuple(obs.shape)} and {tuple(action.shape)}"
            )
        if hidden.shape != (obs.shape[0], self.deter_dim):
            raise ValueError(f"imagine: hidden must be ({obs.shape[0]}, {self.deter_dim}), got {tuple(hidden.shape)}")
        action = action[:, 0]
        stoch, logits = self._latent(self.post_net(torch.cat([self.hidden(hidden), self.embed(obs[:, 0])], -1)), True)
        state = RSSMState(hidden, stoch, logits)
        feats = self.features(state)
        reward = self.reward(feats, action)
        nxt = self.img_step(state, action, deterministic=True)
        return self.decode(self.features(nxt)).unsqueeze(1), reward.unsqueeze(1), nxt.deter
