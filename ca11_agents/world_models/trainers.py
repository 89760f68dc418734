"""Gradient-step drivers for the world models: one optimiser, gradient clipping and a loss history.

Any ``nn.Module`` with ``loss(batch) -> (loss_tensor, metrics_dict)`` can be trained by :class:`Trainer` (the VAE
alone, the :class:`~ca11_agents.world_models.world_model.WorldModel`, the RSSM); the subclasses only name and check
the batch layout their model expects::

    trainer = WorldModelTrainer(world_model, learning_rate=1e-3, device="auto")
    for _ in range(500):
        metrics = trainer.train_step(sample_transitions(data, 64, rng))
    plot_world_model_training(trainer)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import get_device
from torch import Tensor, nn

from ca11_agents.world_models.world_model import TRANSITION_KEYS

#: A batch as users pass it: numpy arrays, tensors (any dtype, any device) or nested lists, by name.
Batch = Mapping[str, Any]


class Trainer:
    """Trains ``model`` by Adam on ``model.loss(batch)``.

    Args:
        model: a module with ``loss(batch: dict[str, Tensor]) -> (Tensor, dict[str, float])``; it is moved to
            ``device``.
        learning_rate: Adam's step size.
        device: ``"auto"`` (CUDA when available), a device string or a ``torch.device``.
        max_grad_norm: the global gradient norm is clipped to this (DreamerV3 clips every module's gradients); the
            norm before clipping is recorded as ``grad_norm``.
        weight_decay: AdamW's decoupled weight decay (0 for plain Adam).

    Attributes:
        history: every recorded metric by name, one float per :meth:`train_step` (what the plots read).
        num_steps: gradient steps taken.
    """

    #: Keys a batch must hold (checked before the model sees it).
    required_keys: tuple[str, ...] = ()

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float = 1e-3,
        device: torch.device | str = "auto",
        *,
        max_grad_norm: float = 100.0,
        weight_decay: float = 0.0,
    ) -> None:
        if not callable(getattr(model, "loss", None)):
            raise ValueError(
                f"{type(self).__name__}: the model needs a loss(batch) method, {type(model).__name__} has none"
            )
        if learning_rate <= 0 or max_grad_norm <= 0:
            raise ValueError(
                f"{type(self).__name__}: learning_rate and max_grad_norm must be > 0, "
                f"got {learning_rate}, {max_grad_norm}"
            )
        self.device = get_device(device)
        self.model = model.to(self.device)
        self.max_grad_norm = max_grad_norm
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
        self.history: dict[str, list[float]] = defaultdict(list)
        self.num_steps = 0

    def prepare_batch(self, batch: Batch) -> dict[str, Tensor]:
        """The batch as float32 tensors on the trainer's device (booleans such as ``is_first`` become 0/1)."""
        missing = [key for key in self.required_keys if key not in batch]
        if missing:
            raise ValueError(f"{type(self).__name__}: the batch lacks {missing}; got keys {sorted(batch)}")
        return {
            key: torch.as_tensor(value if isinstance(value, Tensor) else np.asarray(value), dtype=torch.float32,
                                 device=self.device)
            for key, value in batch.items()
        }

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One gradient step on ``batch``; returns (and appends to :attr:`history`) the model's metrics plus
        ``grad_norm``."""
        self.model.train()
        loss, metrics = self.model.loss(self.prepare_batch(batch))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{type(self).__name__}: non-finite loss at step {self.num_steps}: {metrics}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.num_steps += 1
        metrics = {**metrics, "grad_norm": float(grad_norm)}
        for key, value in metrics.items():
            self.history[key].append(float(value))
        return metrics

    @torch.no_grad()
    def evaluate(self, batch: Batch) -> dict[str, float]:
        """The model's metrics on ``batch`` in eval mode, without a gradient step (e.g. a validation loss)."""
        self.model.eval()
        return self.model.loss(self.prepare_batch(batch))[1]


class WorldModelTrainer(Trainer):
    """Trains a :class:`~ca11_agents.world_models.world_model.WorldModel` on batches of transitions
    ``observations (N, O)``, ``actions (N, A)``, ``rewards (N,)`` and ``next_observations (N, O)`` (see
    :func:`ca11_agents.data.sample_transitions`). Arguments as :class:`Trainer`."""

    required_keys = TRANSITION_KEYS


class RSSMTrainer(Trainer):
    """Trains a :class:`~ca11_agents.world_models.rssm.RecurrentStateSpaceModel` on sequence batches
    ``observations (B, T, O)``, ``actions (B, T, A)``, ``rewards (B, T)``, optionally ``terminated`` and ``is_first``
    ``(B, T)`` (see :func:`ca11_agents.data.sample_sequences`). Arguments as :class:`Trainer`."""

    required_keys = ("observations", "actions", "rewards")

    def prepare_batch(self, batch: Batch) -> dict[str, Tensor]:
        """As :meth:`Trainer.prepare_batch`, and checks that the batch is batch-major ``(B, T, ...)``."""
        tensors = super().prepare_batch(batch)
        obs, actions = tensors["observations"], tensors["actions"]
        if obs.dim() != 3 or actions.dim() != 3 or actions.shape[:2] != obs.shape[:2]:
            raise ValueError(
                f"RSSMTrainer: expected observations (B, T, O) and actions (B, T, A), got {tuple(obs.shape)} and "
                f"{tuple(actions.shape)} (add the batch axis with [None] for a single sequence)"
            )
        return tensors
