"""Latent dynamics ``z_{t+1} ~ p(z_{t+1} | z_t, a_t)``, optionally as an ensemble whose disagreement measures
epistemic uncertainty (PETS: Chua et al., 2018, "Deep RL in a Handful of Trials using Probabilistic Dynamics Models").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from ca11_agents.common.nets import mlp


class Ensemble(nn.Module):
    """``E`` modules of one architecture evaluated in one batched call.

    The members' weights are stacked along a new leading axis and the architecture is evaluated once under
    :func:`torch.vmap` (the pattern of PyTorch's model-ensembling tutorial), so an ensemble of 5 costs one batched
    matrix product per layer instead of 5 Python calls, and every member is still built by the same factory
    (:func:`~ca11_agents.common.nets.mlp`). TD-MPC2 builds its Q-ensemble the same way.

    Args:
        members: the modules to stack; same architecture, independent initial weights, no buffers.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("Ensemble: needs at least one member")
        params, buffers = stack_module_state(list(members))
        if buffers:
            raise ValueError(f"Ensemble: members with buffers are not supported, got {sorted(buffers)}")
        self.size = len(members)
        self._names = list(params)
        # nn.ParameterDict keys cannot contain '.', so the stacked weights are kept in a list in `_names` order.
        self.params = nn.ParameterList([nn.Parameter(params[name].detach().clone()) for name in self._names])
        # Members that are a plain stack of Linear layers and parameter-free activations (what `mlp(norm=False)`
        # builds) are evaluated layer by layer with batched matrix products, about 2.5x faster than vmap on a CPU
        # (vmap's per-call overhead dominates the small networks a planner calls thousands of times per action).
        skeleton = members[0]
        self._linear_stack = isinstance(skeleton, nn.Sequential) and all(
            (isinstance(m, nn.Linear) and m.bias is not None) or not any(True for _ in m.parameters()) for m in skeleton
        )
        self._layers = [m if not isinstance(m, nn.Linear) else None for m in skeleton] if self._linear_stack else []
        # A weightless copy of the architecture for functional_call. Held in a tuple so that nn.Module does not
        # register it: its meta tensors must not be moved by .to() nor appear in the state_dict.
        self._skeleton = (copy.deepcopy(members[0]).to("meta"),)

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate every member.

        Args:
            x: ``(N, in)`` shared by all members, or ``(E, N, in)`` with one batch per member.

        Returns:
            ``(E, N, out)``.
        """
        shared = x.dim() == 2
        if not shared and (x.dim() != 3 or x.shape[0] != self.size):
            raise ValueError(f"Ensemble: expected inputs (N, in) or ({self.size}, N, in), got {tuple(x.shape)}")
        if self._linear_stack:
            h = x.expand(self.size, *x.shape) if shared else x
            weights = iter(self.params)  # weight, bias of each Linear, in order
            for layer in self._layers:
                if layer is None:
                    weight, bias = next(weights), next(weights)
                    h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))  # (E, N, in) -> (E, N, out)
                else:
                    h = layer(h)
            return h
        params = dict(zip(self._names, self.params))

        def call(member_params: dict[str, Tensor], inputs: Tensor) -> Tensor:
            return functional_call(self._skeleton[0], member_params, (inputs,))

        return torch.vmap(call, in_dims=(0, None if shared else 0), randomness="different")(params, x)


class LatentDynamicsModel(nn.Module):
    """Predicts the next latent from the current latent and action: ``z_{t+1} = z_t + delta(z_t, a_t)``.

    The network predicts the *change* of the latent (as PETS and MBPO predict state deltas): between two control
    steps the state moves little, so the residual form starts near the "nothing changes" model and spends its
    capacity on the change itself, which is what one-step prediction error is made of.

    With ``stochastic=True`` each member outputs a diagonal Gaussian (aleatoric noise, trained by negative
    log-likelihood); with ``stochastic=False`` a point prediction (trained by squared error). With
    ``ensemble_size > 1`` the members are trained on the same batches from independent initialisations (deep ensembles,
    Lakshminarayanan et al., 2017, found that enough; bootstrapped subsets did not help), and the variance of their
    means, :meth:`uncertainty`, is the epistemic uncertainty: large where the data did not pin the dynamics down.

    Args:
        latent_dim: size of ``z``.
        action_dim: size of ``a``.
        hidden_dims: hidden widths of each member's MLP.
        stochastic: Gaussian (``True``) or deterministic (``False``) members.
        ensemble_size: number of members.
        min_std: smallest predicted standard deviation (keeps the likelihood bounded).
        max_std: largest predicted standard deviation.
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_dims: Sequence[int] = (128, 128),
        stochastic: bool = True,
        ensemble_size: int = 1,
        *,
        min_std: float = 1e-3,
        max_std: float = 1.0,
    ) -> None:
        super().__init__()
        if latent_dim < 1 or action_dim < 1:
            raise ValueError(
                f"LatentDynamicsModel: latent_dim and action_dim must be >= 1, got {latent_dim}, {action_dim}"
            )
        if ensemble_size < 1:
            raise ValueError(f"LatentDynamicsModel: ensemble_size must be >= 1, got {ensemble_size}")
        if not 0 < min_std < max_std:
            raise ValueError(f"LatentDynamicsModel: need 0 < min_std < max_std, got {min_std}, {max_std}")
        self.latent_dim = latent_dim
        self.action_dim = action_dim
        self.stochastic = stochastic
        self.ensemble_size = ensemble_size
        self.log_std_bounds = (math.log(min_std), math.log(max_std))
        out_dim = 2 * latent_dim if stochastic else latent_dim
        # norm=False: see VariationalAutoencoder (LayerNorm after mlp's bias-free first layer discards input scale).
        members = [mlp(latent_dim + action_dim, out_dim, hidden_dims, norm=False) for _ in range(ensemble_size)]
        self.net = Ensemble(members)

    def members(self, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor | None]:
        """Every member's prediction of ``z_{t+1}``.

        Args:
            z: ``(..., latent_dim)``.
            action: ``(..., action_dim)``, same leading shape.

        Returns:
            ``(mean, std)``, each ``(E, ..., latent_dim)``; ``std`` is ``None`` for a deterministic model.
        """
        if z.shape[-1] != self.latent_dim or action.shape[-1] != self.action_dim or z.shape[:-1] != action.shape[:-1]:
            raise ValueError(
                f"LatentDynamicsModel: expected z (..., {self.latent_dim}) and action (..., {self.action_dim}) with "
                f"the same leading shape, got {tuple(z.shape)} and {tuple(action.shape)}"
            )
        lead = z.shape[:-1]
        x = torch.cat([z, action], dim=-1).reshape(-1, self.latent_dim + self.action_dim)  # (..., Z+A) -> (N, Z+A)
        out = self.net(x).reshape(self.ensemble_size, *lead, -1)  # (E, N, out) -> (E, ..., out)
        if not self.stochastic:
            return z + out, None
        delta, raw_log_std = out.chunk(2, dim=-1)
        return z + delta, self._std(raw_log_std)

    def propagate(self, z: Tensor, action: Tensor, sample: bool = False) -> Tensor:
        """Every member steps its own latents: ``z`` ``(E, N, latent_dim)`` and ``action`` ``(N, action_dim)`` (shared)
        or ``(E, N, action_dim)`` -> ``(E, N, latent_dim)``, each member's mean, or a draw from its Gaussian if
        ``sample`` (PETS's "TSinf" propagation: a particle follows one member throughout, so the members' rollouts
        of one action sequence diverge where the model is uncertain)."""
        if z.dim() != 3 or z.shape[0] != self.ensemble_size or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"LatentDynamicsModel.propagate: expected z ({self.ensemble_size}, N, {self.latent_dim}), "
                f"got {tuple(z.shape)}"
            )
        action = action.expand(self.ensemble_size, *action.shape) if action.dim() == 2 else action
        out = self.net(torch.cat([z, action], dim=-1))  # (E, N, out)
        if not self.stochastic:
            return z + out
        delta, raw_log_std = out.chunk(2, dim=-1)
        mean = z + delta
        return mean + self._std(raw_log_std) * torch.randn_like(mean) if sample else mean

    def _std(self, raw_log_std: Tensor) -> Tensor:
        # PETS's soft clamp: smooth bounds with gradient everywhere; a raw output of 0 gives std = max_std / 2, a
        # broad start, so early likelihoods are not dominated by confident errors.
        low, high = self.log_std_bounds
        log_std = high - F.softplus(high - raw_log_std)
        return (low + F.softplus(log_std - low)).exp()

    def forward(self, z: Tensor, action: Tensor) -> Tensor:
        """The point prediction of ``z_{t+1}``, ``(..., latent_dim)``: the mean over members of their means."""
        mean, _ = self.members(z, action)
        return mean.mean(0)

    def sample(self, z: Tensor, action: Tensor) -> Tensor:
        """A sample of ``z_{t+1}``, ``(..., latent_dim)``: each row follows one member drawn uniformly at random and
        that member's Gaussian (PETS's "TS1" propagation); a deterministic model returns the drawn member's mean."""
        mean, std = self.members(z, action)
        if std is not None:
            mean = mean + std * torch.randn_like(mean)
        if self.ensemble_size == 1:
            return mean[0]
        pick = torch.randint(self.ensemble_size, z.shape[:-1], device=z.device)  # (...)
        return mean.gather(0, pick.unsqueeze(0).unsqueeze(-1).expand(1, *mean.shape[1:])).squeeze(0)

    def uncertainty(self, z: Tensor, action: Tensor) -> Tensor:
        """Epistemic uncertainty ``(...)``: the variance across members of their predicted means, averaged over latent
        dimensions (0 for a single model)."""
        mean, _ = self.members(z, action)
        if self.ensemble_size == 1:
            return torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
        return mean.var(0, unbiased=False).mean(-1)

    def predictive(self, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """The ensemble's predictive Gaussian of ``z_{t+1}``, moment-matched to the mixture of its members: ``(mean,
        std)``, each ``(..., latent_dim)``, with ``std^2`` = the members' mean variance (aleatoric, 0 for
        deterministic members) + the variance of their means (epistemic, 0 for a single member)."""
        mean, std = self.members(z, action)
        aleatoric = torch.zeros_like(mean[0]) if std is None else std.pow(2).mean(0)
        return mean.mean(0), (aleatoric + mean.var(0, unbiased=False)).sqrt()

    def calibration(
        self, z: Tensor, action: Tensor, target: Tensor, levels: Sequence[float] = (0.68, 0.95)
    ) -> dict[str, dict[float, float]]:
        """How often held-out ``target`` latents fall inside the predicted central intervals (a calibrated model
        puts 68 % of them inside its 68 % interval).

        Returns:
            ``{"members": {level: fraction}, "ensemble": {level: fraction}}``: the members' own Gaussians (averaged
            over members; absent for deterministic members, which predict no interval) and the ensemble's
            :meth:`predictive` Gaussian (absent for a single deterministic member).
        """
        out: dict[str, dict[float, float]] = {}
        mean, std = self.members(z, action)
        if std is not None:
            out["members"] = interval_coverage(mean, std, target.expand_as(mean), levels)
        if std is not None or self.ensemble_size > 1:
            out["ensemble"] = interval_coverage(*self.predictive(z, action), target, levels)
        return out

    def loss(self, z: Tensor, action: Tensor, target: Tensor) -> Tensor:
        """Per-sample training loss ``(...)`` of predicting ``target`` from ``(z, action)``: :meth:`prediction_loss`
        of :meth:`members`."""
        return self.prediction_loss(*self.members(z, action), target)

    @staticmethod
    def prediction_loss(mean: Tensor, std: Tensor | None, target: Tensor) -> Tensor:
        """Per-sample loss ``(...)`` of member predictions ``(E, ..., L)`` against ``target`` ``(..., L)``, averaged
        over members and latent dimensions: the Gaussian negative log-likelihood without its constant, or the
        squared error when ``std`` is ``None`` (a deterministic model)."""
        if std is None:
            return (mean - target).pow(2).mean((0, -1))
        return F.gaussian_nll_loss(mean, target.expand_as(mean), std.pow(2), reduction="none").mean((0, -1))


def interval_coverage(
    mean: Tensor, std: Tensor, target: Tensor, levels: Sequence[float] = (0.68, 0.95)
) -> dict[float, float]:
    """The fraction of ``target`` entries inside the central interval of probability ``level`` of the Gaussians
    ``N(mean, std^2)`` (all of one shape), for each level: ``|target - mean| <= sqrt(2) erfinv(level) std``."""
    if not all(0 < level < 1 for level in levels):
        raise ValueError(f"interval_coverage: levels must lie in (0, 1), got {list(levels)}")
    distance = (target - mean).abs()
    return {
        float(level): float((distance <= math.sqrt(2) * torch.erfinv(torch.tensor(float(level))) * std).float().mean())
        for level in levels
    }
