"""Representation losses of the RSSM: what shapes the latent besides the reward, continue and KL terms.

The RSSM's ``decoder`` slot takes any module with ``loss(features, obs[, embed, is_first]) -> (...)`` and
``forward(features) -> observation``. :func:`build_representation` builds one by name:

``"reconstruction"`` (the default: DreamerV3)
    a decoder reconstructs every observation from the posterior features ``[h_t, z_t]``
    (:func:`~ca11_agents.world_models.encoders.build_decoder`).
``"contrastive"`` (:class:`ContrastiveRepresentation`)
    InfoNCE (van den Oord et al., 2018, "Representation Learning with Contrastive Predictive Coding"): the
    recurrent state ``h_t``, computed from ``s_{t-1}`` and ``a_{t-1}`` *before* ``o_t`` is seen, is the prediction
    of the next latent; the encoder's embedding of ``o_t`` is its target; every other step of the batch is a
    negative (real observations of the same and other sequences, not random vectors).
``"redundancy"`` (:class:`RedundancyReduction`)
    decoder-free redundancy reduction in the manner of R2-Dreamer (ICLR 2026) and Barlow Twins (Zbontar et al.,
    2021): the cross-correlation between projected posterior features and the (stop-gradient) embeddings of the
    same steps, over the batch, is pulled towards the identity.

Without a decoder nothing reconstructs observations, so the two decoder-free losses carry a **probe decoder**
trained on detached features (it never shapes the latent) on a share of the batch; ``forward`` (and so
``RecurrentStateSpaceModel.decode``, ``ca11 dream`` and the dream plots) decodes with the probe, and its loss is
logged inside ``reconstruction_loss``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from ca11_agents.common.distributions import float32_math
from ca11_agents.common.nets import mlp
from ca11_agents.world_models.encoders import build_decoder

#: The representation losses by name (``RecurrentStateSpaceModel(representation=...)``).
REPRESENTATIONS = ("reconstruction", "contrastive", "redundancy")


class _DecoderFree(nn.Module):
    """A representation loss without a reconstruction decoder: a projection head plus a probe decoder."""

    #: Tells the RSSM to pass the encoder's embeddings to :meth:`loss`.
    needs_embed = True

    def __init__(self, space: spaces.Space, feature_dim: int, parts: dict[str, Any], probe_fraction: float) -> None:
        super().__init__()
        if not 0.0 <= probe_fraction <= 1.0:
            raise ValueError(f"{type(self).__name__}: probe_fraction must be in [0, 1], got {probe_fraction}")
        self.probe_fraction = probe_fraction
        self.probe = build_decoder(space, feature_dim, **parts) if probe_fraction > 0 else None

    def forward(self, features: Tensor) -> Any:
        """The probe decoder's prediction of the observation (observation units)."""
        if self.probe is None:
            raise RuntimeError(f"{type(self).__name__} was built with probe_fraction=0: it cannot decode")
        return self.probe(features)

    def probe_loss(self, features: Tensor, obs: Any) -> Tensor:
        """The probe's reconstruction loss on the first ``probe_fraction`` of the sequences, features detached
        (a scalar: the mean per step)."""
        if self.probe is None:
            return features.new_zeros(())
        rows = max(1, round(self.probe_fraction * features.shape[0]))
        part = obs[:rows] if not isinstance(obs, dict) else {k: v[:rows] for k, v in obs.items()}
        return self.probe.loss(features[:rows].detach(), part).mean()


@float32_math
def _cosine_logits(query: Tensor, key: Tensor, temperature: float) -> Tensor:
    """``(N, N)`` cosine similarities of ``query`` and ``key`` ``(N, D)`` divided by ``temperature``, in float32."""
    return F.normalize(query, dim=-1) @ F.normalize(key, dim=-1).T / temperature


class ContrastiveRepresentation(_DecoderFree):
    """InfoNCE between the predicted and the encoded latent of every step (see the module docstring).

    Args:
        space: the (channel-first) observation space, for the probe decoder.
        feature_dim: size of the RSSM's features ``[h, z]``.
        hidden_dim: size of ``h`` (the first ``hidden_dim`` features): the prediction.
        embed_dim: size of the encoder's embeddings: the target.
        parts: ``units``, ``layers``, ``symlog_obs``, ``cnn_depth`` of the probe decoder.
        proj_dim: size of the space the two are compared in.
        temperature: of the softmax over cosine similarities.
        probe_fraction: share of the batch's sequences the probe decoder trains on (0: no probe).
    """

    def __init__(
        self,
        space: spaces.Space,
        feature_dim: int,
        hidden_dim: int,
        embed_dim: int,
        parts: dict[str, Any],
        *,
        proj_dim: int = 64,
        temperature: float = 0.1,
        probe_fraction: float = 0.25,
    ) -> None:
        super().__init__(space, feature_dim, parts, probe_fraction)
        if temperature <= 0:
            raise ValueError(f"ContrastiveRepresentation: temperature must be > 0, got {temperature}")
        self.hidden_dim, self.temperature = hidden_dim, temperature
        self.query = mlp(hidden_dim, proj_dim, [parts["units"]])
        self.key = mlp(embed_dim, proj_dim, [parts["units"]])

    def logits(self, predicted: Tensor, embed: Tensor) -> Tensor:
        """``(N, N)`` similarities of every prediction ``(N, hidden_dim)`` with every embedding ``(N, embed_dim)``;
        the diagonal holds the matched pairs."""
        return _cosine_logits(self.query(predicted), self.key(embed), self.temperature)

    def info_nce(self, predicted: Tensor, embed: Tensor, anchors: Tensor | None = None) -> Tensor:
        """Per-pair InfoNCE loss ``(N,)``: cross-entropy of picking each prediction's own embedding among all.

        ``anchors`` ``(N,)`` (bool): the predictions that are scored (others count 0); every embedding stays a
        negative for the others."""
        logits = self.logits(predicted, embed)
        nce = F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device), reduction="none")
        return nce if anchors is None else nce * anchors

    def loss(self, features: Tensor, obs: Any, embed: Tensor, is_first: Tensor | None = None) -> Tensor:
        """Per-step loss ``(B, T)``: InfoNCE of ``h_t`` against the embedding of ``o_t``, plus the probe's loss.

        Steps that start an episode or a window (``is_first``) are negatives only: their ``h`` is the initial state,
        the same for every such step, so it cannot tell their observations apart."""
        lead = features.shape[:-1]
        anchors = None if is_first is None else (is_first.reshape(-1) == 0)
        nce = self.info_nce(features[..., : self.hidden_dim].reshape(-1, self.hidden_dim),
                            embed.reshape(-1, embed.shape[-1]), anchors)  # fmt: skip
        return nce.reshape(lead) + self.probe_loss(features, obs)


class RedundancyReduction(_DecoderFree):
    """Barlow Twins' objective between projected posterior features and stop-gradient embeddings (R2-Dreamer).

    With both standardised over the batch's ``N`` steps, ``C = x^T e / N`` is their ``(E, E)`` cross-correlation;
    the loss is ``(sum_i (1 - C_ii)^2 + redundancy_weight * sum_{i != j} C_ij^2) / E`` (divided by ``E`` so that
    it weighs like a per-step reconstruction loss; ``redundancy_weight`` defaults to ``1 / E``, which gives the
    off-diagonal terms as a whole the diagonal's weight).

    Args:
        space, feature_dim, embed_dim, parts, probe_fraction: as :class:`ContrastiveRepresentation`.
        redundancy_weight: Barlow Twins' ``lambda`` (``None``: ``1 / embed_dim``).
    """

    def __init__(
        self,
        space: spaces.Space,
        feature_dim: int,
        hidden_dim: int,  # noqa: ARG002 (one signature for every representation)
        embed_dim: int,
        parts: dict[str, Any],
        *,
        redundancy_weight: float | None = None,
        probe_fraction: float = 0.25,
    ) -> None:
        super().__init__(space, feature_dim, parts, probe_fraction)
        self.redundancy_weight = 1.0 / embed_dim if redundancy_weight is None else redundancy_weight
        self.projector = mlp(feature_dim, embed_dim, [parts["units"]])

    @staticmethod
    @float32_math
    def cross_correlation(x: Tensor, y: Tensor) -> Tensor:
        """``(D, D)`` cross-correlation of ``x`` and ``y`` ``(N, D)``, each standardised over the ``N >= 2`` rows
        (population statistics, so that a perfectly correlated pair gives exactly 1)."""
        if x.shape[0] < 2:
            raise ValueError(f"RedundancyReduction: needs at least 2 steps in a batch to correlate, got {x.shape[0]}")
        x = (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-6)
        y = (y - y.mean(0)) / (y.std(0, unbiased=False) + 1e-6)
        return x.T @ y / x.shape[0]

    def loss(self, features: Tensor, obs: Any, embed: Tensor, is_first: Tensor | None = None) -> Tensor:  # noqa: ARG002
        """The batch's redundancy-reduction loss (a scalar, the same for every step) plus the probe's loss
        (``is_first`` is accepted for one signature with :class:`ContrastiveRepresentation`; every step counts)."""
        corr = self.cross_correlation(
            self.projector(features.reshape(-1, features.shape[-1])), embed.reshape(-1, embed.shape[-1]).detach()
        )
        diag = torch.diagonal(corr)
        invariance = (1.0 - diag).pow(2).sum()
        redundancy = corr.pow(2).sum() - diag.pow(2).sum()
        return (invariance + self.redundancy_weight * redundancy) / corr.shape[0] + self.probe_loss(features, obs)


def build_representation(
    name: str,
    space: spaces.Space,
    feature_dim: int,
    hidden_dim: int,
    embed_dim: int,
    parts: dict[str, Any],
    **kwargs: Any,
) -> nn.Module:
    """The RSSM's representation module by name (:data:`REPRESENTATIONS`); ``kwargs`` go to its class."""
    if name == "reconstruction":
        if kwargs:
            raise ValueError(f"the reconstruction decoder takes no representation_kwargs, got {sorted(kwargs)}")
        return build_decoder(space, feature_dim, **parts)
    classes = {"contrastive": ContrastiveRepresentation, "redundancy": RedundancyReduction}
    if name not in classes:
        raise ValueError(f"unknown representation {name!r} (known: {', '.join(REPRESENTATIONS)})")
    return classes[name](space, feature_dim, hidden_dim, embed_dim, parts, **kwargs)
