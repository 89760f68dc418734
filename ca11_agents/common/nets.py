"""Network factories: every MLP in the package is built by :func:`mlp`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(
    in_dim: int,
    out_dim: int,
    hidden_dims: Sequence[int] = (256, 256),
    *,
    activation: type[nn.Module] = nn.SiLU,
    norm: bool = True,
    out_scale: float | None = None,
) -> nn.Sequential:
    """A multilayer perceptron ``in_dim -> hidden_dims... -> out_dim``.

    Args:
        in_dim: input features.
        out_dim: output features (0 for no output layer: the last hidden layer is the output).
        hidden_dims: widths of the hidden layers.
        activation: activation after each hidden layer (SiLU, as DreamerV3).
        norm: LayerNorm before each hidden activation (DreamerV3 uses it everywhere; it keeps small-batch
            training stable).
        out_scale: if given, the output layer's weights are scaled by it and its bias zeroed (0.0 gives a zero
            initial output, which DreamerV3 uses for the reward and value heads so that early predictions are 0).
    """
    layers: list[nn.Module] = []
    dim = in_dim
    for width in hidden_dims:
        # Keep the bias even before LayerNorm: LN(W x) is invariant to the scale of x, so a bias-free first layer
        # would see only the direction of its input (two observations that differ by a factor look the same).
        layers.append(nn.Linear(dim, width))
        if norm:
            layers.append(nn.LayerNorm(width))
        layers.append(activation())
        dim = width
    if out_dim > 0:
        out = nn.Linear(dim, out_dim)
        if out_scale is not None:
            with torch.no_grad():
                out.weight.mul_(out_scale)
                out.bias.zero_()
        layers.append(out)
    return nn.Sequential(*layers)
