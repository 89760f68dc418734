"""Variational autoencoder over vector observations (Kingma and Welling, 2014), and the running normaliser it uses.

The VAE is the world model's interface to observations: :meth:`VariationalAutoencoder.encode` takes observations
in their own units and :meth:`VariationalAutoencoder.decode` returns observations in their own units. Inside, the
observations are standardised by a :class:`RunningMeanStd` kept as buffers (so it moves with ``.to(device)`` and is
saved in the ``state_dict``): a cart position in metres and an angular velocity in rad/s then weigh the same in the
reconstruction loss, and the networks see inputs of unit scale whatever the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ca11_agents.common.nets import mlp


class RunningMeanStd(nn.Module):
    """Running mean and variance of a stream of vectors, as buffers; standardises and un-standardises.

    The update is the parallel algorithm of Chan et al. (1979), the one SB3's ``RunningMeanStd`` uses (SB3's is
    numpy-only; this one lives on the model's device and in its ``state_dict``). Until the first update the
    transform is the identity (mean 0, variance 1).

    Args:
        shape: the shape of one vector, e.g. ``(obs_dim,)``; ``()`` for scalars such as rewards.
        epsilon: added to the variance before the square root, so that a constant feature does not divide by 0.
        clip: standardised values are clipped to ``[-clip, clip]`` (SB3's ``VecNormalize`` default), which bounds
            what an outlier or a feature that was constant during training can do to the networks.
    """

    def __init__(self, shape: Sequence[int] = (), epsilon: float = 1e-8, clip: float = 10.0) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.clip = clip
        self.register_buffer("mean", torch.zeros(tuple(shape)))
        self.register_buffer("var", torch.ones(tuple(shape)))
        self.register_buffer("count", torch.zeros(()))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold a batch ``(..., *shape)`` into the statistics (every leading axis counts as a sample)."""
        shape = self.mean.shape
        if x.shape[x.dim() - len(shape) :] != shape:
            raise ValueError(f"RunningMeanStd: expected values of shape (..., {tuple(shape)}), got {tuple(x.shape)}")
        flat = x.detach().reshape(-1, *shape).to(self.mean.dtype)  # (..., *shape) -> (N, *shape)
        batch_count = flat.shape[0]
        if batch_count == 0:
            return
        batch_mean = flat.mean(0)
        batch_var = flat.var(0, unbiased=False)
        if self.count == 0:  # the first batch replaces the identity initialisation
            self.mean.copy_(batch_mean)
            self.var.copy_(batch_var)
            self.count.fill_(batch_count)
            return
        total = self.count + batch_count
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * batch_count + delta.pow(2) * self.count * batch_count / total
        self.mean.add_(delta * batch_count / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    @property
    def std(self) -> Tensor:
        """The standard deviation used by :meth:`normalize`."""
        return torch.sqrt(self.var + self.epsilon)

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std``, clipped to ``[-clip, clip]``."""
        return ((x - self.mean) / self.std).clamp(-self.clip, self.clip)

    def denormalize(self, y: Tensor) -> Tensor:
        """The inverse of :meth:`normalize` (without the clip): ``y * std + mean``."""
        return y * self.std + self.mean


class ELBOTerms(NamedTuple):
    """What :meth:`VariationalAutoencoder.elbo_terms` returns for observations ``(..., obs_dim)``."""

    z: Tensor  #: (..., latent_dim) latents sampled from the posterior
    reconstruction: Tensor  #: (..., obs_dim) their decoding, in standardised units
    reconstruction_loss: Tensor  #: squared error summed over dimensions, averaged over samples (a unit Gaussian NLL)
    kl: Tensor  #: KL(posterior || prior), summed over latent dimensions, averaged over samples


class VariationalAutoencoder(nn.Module):
    """A Gaussian VAE: ``q(z | o) = N(mu(o), diag(exp(log_var(o))))``, prior ``N(0, I)``, deterministic decoder.

    Observations are standardised by a running normaliser (updated by :meth:`loss` in training mode), so the encoder
    takes and the decoder returns observations in the environment's units.

    Args:
        obs_dim: size of an observation vector.
        latent_dim: size of the latent ``z``.
        hidden_dims: widths of the encoder's hidden layers; the decoder mirrors them.
        beta: weight of the KL term (a beta-VAE, Higgins et al., 2017). The reconstruction term is a sum of squared
            errors over the standardised observation, the KL a sum over latent dimensions; with this scaling the
            posterior's variance on a used latent dimension settles near ``beta``, which blurs what the decoder can
            recover. World models need sharp reconstructions (the change between two control steps is small), hence
            the small default; raise it for a smoother latent space.
        min_log_var: lower bound on the encoder's log-variance, which keeps the KL and its gradient finite.
    """

    def __init__(
        self,
        obs_dim: int,
        latent_dim: int,
        hidden_dims: Sequence[int] = (128, 64),
        *,
        beta: float = 1e-3,
        min_log_var: float = -10.0,
    ) -> None:
        super().__init__()
        if obs_dim < 1 or latent_dim < 1:
            raise ValueError(
                f"VariationalAutoencoder: obs_dim and latent_dim must be >= 1, got {obs_dim}, {latent_dim}"
            )
        if beta < 0:
            raise ValueError(f"VariationalAutoencoder: beta must be >= 0, got {beta}")
        self.obs_dim = obs_dim
        self.latent_dim = latent_dim
        self.beta = beta
        self.min_log_var = min_log_var
        self.normalizer = RunningMeanStd((obs_dim,))
        # norm=False: `mlp`'s LayerNorm follows a bias-free first layer, and LN(W cx) = LN(W x) for any c > 0, so a
        # normed network sees only the direction of its input. For a low-dimensional state the magnitude is the
        # information (a pole at 2 sigma is not a pole at 1 sigma): on ContinuousCartPole, LayerNorm here made the
        # one-step error of the world model ten times larger. These small networks on standardised inputs train
        # stably without it. The dynamics and reward models follow the same rule.
        self.encoder = mlp(obs_dim, 2 * latent_dim, hidden_dims, norm=False)
        self.decoder = mlp(latent_dim, obs_dim, tuple(reversed(hidden_dims)), norm=False)

    def _check_obs(self, obs: Tensor) -> None:
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"VariationalAutoencoder: expected observations (..., {self.obs_dim}), got {tuple(obs.shape)}"
            )

    def encode(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """The posterior's ``(mu, log_var)``, each ``(..., latent_dim)``, for observations ``(..., obs_dim)``."""
        self._check_obs(obs)
        mu, log_var = self.encoder(self.normalizer.normalize(obs)).chunk(2, dim=-1)
        return mu, log_var.clamp_min(self.min_log_var)

    def reparameterize(self, mu: Tensor, log_var: Tensor) -> Tensor:
        """A differentiable sample ``z = mu + std * eps`` with ``eps ~ N(0, I)``."""
        return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)

    def decode_normalized(self, z: Tensor) -> Tensor:
        """The reconstruction ``(..., obs_dim)`` in standardised units (what the losses compare)."""
        return self.decoder(z)

    def decode(self, z: Tensor) -> Tensor:
        """The reconstruction ``(..., obs_dim)`` of latents ``(..., latent_dim)``, in observation units."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"VariationalAutoencoder: expected latents (..., {self.latent_dim}), got {tuple(z.shape)}")
        return self.normalizer.denormalize(self.decoder(z))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample and decode: returns ``(reconstruction, mu, log_var, z)``.

        ``z`` is sampled in training mode and is ``mu`` in eval mode (so that evaluation is deterministic).
        """
        mu, log_var = self.encode(obs)
        z = self.reparameterize(mu, log_var) if self.training else mu
        return self.decode(z), mu, log_var, z

    @staticmethod
    def kl_divergence(mu: Tensor, log_var: Tensor) -> Tensor:
        """``KL(N(mu, exp(log_var)) || N(0, I))`` summed over latent dimensions, averaged over the batch: a scalar."""
        return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1).mean()

    def elbo_terms(self, obs: Tensor) -> ELBOTerms:
        """The terms of the negative ELBO of observations ``(..., obs_dim)``, up to constants (see :class:`ELBOTerms`);
        ``z`` is sampled with the reparameterisation trick."""
        mu, log_var = self.encode(obs)
        z = self.reparameterize(mu, log_var)
        reconstruction = self.decode_normalized(z)
        recon_loss = (reconstruction - self.normalizer.normalize(obs)).pow(2).sum(-1).mean()
        return ELBOTerms(z, reconstruction, recon_loss, self.kl_divergence(mu, log_var))

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """``reconstruction_loss + beta * kl`` of ``batch["observations"]`` ``(..., obs_dim)`` (see :meth:`elbo_terms`).

        In training mode the normaliser first absorbs the batch. Returns ``(loss, metrics)`` with float metrics
        ``loss``, ``reconstruction_loss`` and ``kl_loss``, so that a
        :class:`~ca11_agents.world_models.trainers.Trainer` can train the VAE alone (the notebook's section 1.2).
        """
        if "observations" not in batch:
            raise ValueError(f"VariationalAutoencoder.loss: the batch needs 'observations', got keys {sorted(batch)}")
        obs = batch["observations"]
        self._check_obs(obs)
        if self.training:
            self.normalizer.update(obs)
        terms = self.elbo_terms(obs)
        loss = terms.reconstruction_loss + self.beta * terms.kl
        metrics = {"loss": loss, "reconstruction_loss": terms.reconstruction_loss, "kl_loss": terms.kl}
        return loss, {k: v.item() for k, v in metrics.items()}
