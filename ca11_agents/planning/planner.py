"""Model-predictive control over action sequences: the cross-entropy method (CEM) and MPPI.

A :class:`Planner` searches for the action sequence ``a_t .. a_{t+H-1}`` that maximises an objective (the return
a learned model predicts for it) and is asked again at every step (receding horizon). It never sees a model: the
learner passes a function from candidate sequences ``(n, N, H, A)`` to scores ``(n, N)``, so the same planner
serves the feed-forward world model (``WorldModelAgent``), the RSSM (``RSSMAgent``) and a known toy model in the
tests. Everything is batched over the ``n`` envs and the ``N`` candidates: one call of the objective per iteration.

Action vectors are the learners' (:class:`~ca11_agents.common.spaces.ActionAdapter`): in ``[-1, 1]`` for a ``Box``,
where candidates are Gaussian around the plan (PETS's CEM, Chua et al., 2018; MPPI, Williams et al., 2017); one-hot
blocks for ``Discrete``/``MultiDiscrete``, where the plan holds the probabilities of each choice at each step and
candidates are drawn from them (CEM on categorical distributions, Rubinstein and Kroese, 2004).

The plan carried between steps (``predict``'s recurrent state) is the distribution's mean (or probabilities), shifted
by one step after each action: the warm start of PETS and TD-MPC2. Candidate 0 is always the plan itself, so a good
plan is never lost to sampling noise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``objective(actions (n, N, H, A)) -> scores (n, N)``: higher is better.
Objective = Callable[[Tensor], Tensor]

METHODS = ("cem", "mppi")


def content_seed(*tensors: Tensor) -> int:
    """A 64-bit seed from the exact contents (dtype, shape and values) of ``tensors``: equal
    inputs give equal seeds, and any change of a value gives another, unrelated one (BLAKE2b)."""
    digest = hashlib.blake2b(digest_size=8)
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return int.from_bytes(digest.digest(), "little")


class Planner:
    """CEM or MPPI over action sequences, for continuous or discrete action vectors.

    Args:
        action_dim: size of an action vector.
        nvec: choices of each discrete part (one-hot blocks summing to ``action_dim``); empty for continuous actions
            in ``[-1, 1]``.
        method: ``"cem"`` (refit to the ``elites`` best candidates) or ``"mppi"`` (refit to all candidates weighted
            by ``softmax(score / temperature)``, scores standardised per env so the temperature has no units).
        horizon: steps planned ahead (``H``).
        candidates: sequences scored per iteration (``N``).
        iterations: refits per action.
        elites: candidates CEM refits to (MPPI ignores it).
        temperature: MPPI's temperature (in standard deviations of the scores; small: close to the best).
        momentum: weight of the previous mean in each refit (PETS's ``alpha``).
        init_std: the standard deviation candidates start from each step (continuous actions).
        min_std: the standard deviation never falls below this (keeps searching).
        min_prob: every discrete choice keeps at least this probability after a refit (keeps searching); with many
            choices ``k`` at most half the mass is spread, so the floor is ``min(min_prob, 1 / (2 k))``.
        exploration_std: the noise of the continuous actions taken when not ``deterministic`` (while training):
            ``None`` the refined plan's own standard deviation (TD-MPC's), a number a fixed Gaussian standard deviation
            around the plan's mean (PlaNet adds 0.3), ``0`` the plan's mean itself (the evaluation's actions).
    """

    def __init__(
        self,
        action_dim: int,
        nvec: Sequence[int] = (),
        *,
        method: str = "cem",
        horizon: int = 15,
        candidates: int = 64,
        iterations: int = 4,
        elites: int = 8,
        temperature: float = 0.5,
        momentum: float = 0.1,
        init_std: float = 0.5,
        min_std: float = 0.05,
        min_prob: float = 0.02,
        exploration_std: float | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"Planner: method must be one of {METHODS}, got {method!r}")
        for name, value in (("horizon", horizon), ("candidates", candidates), ("iterations", iterations)):
            if int(value) != value or value < 1:
                raise ValueError(f"Planner: {name} must be an integer >= 1, got {value!r}")
        if method == "cem" and not (int(elites) == elites and 1 <= elites <= candidates):
            raise ValueError(f"Planner: CEM needs 1 <= elites <= candidates, got {elites} and {candidates}")
        if method == "mppi" and candidates < 2:
            raise ValueError(f"Planner: MPPI weighs candidates against each other: needs >= 2, got {candidates}")
        if temperature <= 0 or not 0.0 <= momentum < 1.0 or not 0.0 < min_std <= init_std:
            raise ValueError(
                "Planner: need temperature > 0, 0 <= momentum < 1 and 0 < min_std <= init_std, got "
                f"{temperature}, {momentum}, {min_std}, {init_std}"
            )
        if not 0.0 <= min_prob < 1.0:
            raise ValueError(f"Planner: need 0 <= min_prob < 1, got {min_prob}")
        if exploration_std is not None and not exploration_std >= 0.0:
            raise ValueError(f"Planner: exploration_std must be None or >= 0, got {exploration_std!r}")
        nvec = tuple(int(k) for k in nvec)
        if nvec and sum(nvec) != action_dim:
            raise ValueError(f"Planner: the one-hot blocks {nvec} do not sum to action_dim={action_dim}")
        self.action_dim, self.nvec, self.method = int(action_dim), nvec, method
        self.horizon, self.candidates, self.iterations = int(horizon), int(candidates), int(iterations)
        self.elites = int(elites)
        self.temperature, self.momentum = temperature, momentum
        self.init_std, self.min_std, self.min_prob = init_std, min_std, min_prob
        self.exploration_std = None if exploration_std is None else float(exploration_std)

    @property
    def discrete(self) -> bool:
        return bool(self.nvec)

    # ------------------------------------------------------------------------------------------------- the plan
    def initial_plan(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """The plan before anything is known ``(n, H, A)``: zero actions, or uniform choices."""
        if not self.discrete:
            return torch.zeros(n, self.horizon, self.action_dim, device=device)
        return torch.cat([torch.full((n, self.horizon, k), 1.0 / k, device=device) for k in self.nvec], -1)

    def reset(self, plan: Tensor, is_first: Tensor) -> Tensor:
        """The plan with the rows of envs whose episode starts (``is_first`` ``(n,)``) set back to the initial one."""
        fresh = self.initial_plan(plan.shape[0], plan.device)
        return torch.where(is_first.bool().view(-1, 1, 1), fresh, plan)

    def shift(self, plan: Tensor) -> Tensor:
        """The warm start of the next step: the plan moved one step ahead, its last step from the initial plan."""
        return torch.cat([plan[:, 1:], self.initial_plan(plan.shape[0], plan.device)[:, :1]], 1)

    # ------------------------------------------------------------------------------------------------- search
    def _sample(self, mean: Tensor, std: Tensor, generator: torch.Generator | None) -> Tensor:
        """``N`` candidates per env ``(n, N, H, A)``; candidate 0 is the plan (the mean, or its most likely choices)."""
        n = mean.shape[0]
        if not self.discrete:
            shape = (n, self.candidates, self.horizon, self.action_dim)
            noise = torch.randn(shape, device=mean.device, generator=generator)
            noise[:, 0] = 0.0
            return (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1.0, 1.0)
        parts = []
        for probs in mean.split(self.nvec, -1):  # one block per discrete part: (n, H, k)
            logits = probs.clamp_min(1e-8).log().unsqueeze(1)  # (n, 1, H, k)
            shape = (n, self.candidates, self.horizon, probs.shape[-1])
            gumbel = -torch.empty(shape, device=mean.device).exponential_(generator=generator).log()
            gumbel[:, 0] = 0.0  # candidate 0: the most likely choices
            choice = (logits + gumbel).argmax(-1)
            parts.append(F.one_hot(choice, probs.shape[-1]).to(mean.dtype))
        return torch.cat(parts, -1)

    def _weights(self, scores: Tensor) -> Tensor:
        """Refit weights ``(n, N)`` summing to 1 per env."""
        if self.method == "cem":
            top = scores.topk(self.elites, dim=1).indices
            return torch.zeros_like(scores).scatter_(1, top, 1.0 / self.elites)
        spread = scores.std(1, keepdim=True, unbiased=False)
        standardised = (scores - scores.max(1, keepdim=True).values) / (spread + 1e-6)
        return torch.softmax(standardised / self.temperature, dim=1)

    def _refit(self, samples: Tensor, weights: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
        w = weights.view(*weights.shape, 1, 1)  # (n, N) -> (n, N, 1, 1)
        fit = (w * samples).sum(1)  # (n, H, A)
        if self.discrete:
            probs = self.momentum * mean + (1.0 - self.momentum) * fit
            blocks = []
            for p, k in zip(probs.split(self.nvec, -1), self.nvec):
                mix = min(self.min_prob * k, 0.5)  # every choice keeps at least min_prob (at most half the mass)
                blocks.append((1.0 - mix) * p + mix / k)
            return torch.cat(blocks, -1), mean.new_zeros(())
        std = (w * (samples - fit.unsqueeze(1)).pow(2)).sum(1).sqrt().clamp(self.min_std, self.init_std)
        return self.momentum * mean + (1.0 - self.momentum) * fit, std

    @torch.no_grad()
    def plan(
        self, objective: Objective, plan: Tensor, deterministic: bool = True, key: Sequence[Tensor] = ()
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Refine ``plan`` ``(n, H, A)`` against ``objective`` and choose the first actions.

        With ``deterministic``, candidates are drawn from a generator seeded from the contents of ``plan`` and the
        tensors of ``key`` (the learner passes the latent state the objective starts from), so that the same plan and
        state always give the same actions (what ``predict(..., deterministic=True)`` promises) while successive steps
        draw different candidates. (A generator seeded alike at every step searched the same perturbations of the
        warm-started plan at every step: a bias that drove the world-model planner's cart off the track in every
        evaluation episode while its training episodes held the pole; benchmarks/README.md, "the planner's training
        episodes hold the pole".) Otherwise candidates come from torch's global generator (seeded by the agent's
        ``seed``).

        Returns:
            ``(actions (n, A), next plan (n, H, A), best score (n,))``: the first step of the refined plan (its
            mean, or its most likely choices; if not ``deterministic``, a draw from the refined distribution, or
            around its mean with ``exploration_std``), the plan shifted for the next step, and the best candidate's
            score.
        """
        generator = torch.Generator(plan.device).manual_seed(content_seed(plan, *key)) if deterministic else None
        if plan.dim() != 3 or plan.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(f"Planner: plan must be (n, {self.horizon}, {self.action_dim}), got {tuple(plan.shape)}")
        mean = plan
        std = torch.full_like(mean, self.init_std)
        best = mean.new_full((mean.shape[0],), -torch.inf)
        for _ in range(self.iterations):
            samples = self._sample(mean, std, generator)
            scores = objective(samples)
            if scores.shape != samples.shape[:2]:
                raise ValueError(
                    f"Planner: the objective returned {tuple(scores.shape)}, expected {tuple(samples.shape[:2])}"
                )
            best = torch.maximum(best, scores.max(1).values)
            mean, std = self._refit(samples, self._weights(scores), mean)
        first = mean[:, 0]
        if self.discrete:
            blocks = first.split(self.nvec, -1)
            choices = [p.argmax(-1) if deterministic else torch.multinomial(p, 1).squeeze(-1) for p in blocks]
            action = torch.cat([F.one_hot(c, p.shape[-1]) for c, p in zip(choices, blocks)], -1).to(mean.dtype)
        else:
            if deterministic or self.exploration_std == 0.0:
                action = first
            else:
                scale = std[:, 0] if self.exploration_std is None else self.exploration_std
                action = (first + scale * torch.randn_like(first)).clamp(-1.0, 1.0)
        return action, self.shift(mean), best
