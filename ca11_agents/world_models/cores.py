"""Dynamics cores of the RSSM: the deterministic recurrence ``h_t = f(h_{t-1}, x_t)``.

A core is a module ``(x (B, input_dim), state (B, state_size)) -> state (B, state_size)`` whose state starts at
zeros and whose first ``hidden_dim`` entries are ``h`` (the part the prior, the posterior and every head read).
The RSSM keeps the whole state in :attr:`RSSMState.deter`, so whatever a core carries travels, unchanged, through
acting, ``predict``'s recurrent state, imagination and resets (a reset multiplies the state by 0).

- ``"gru"``: :class:`NormGRUCell` (DreamerV2/V3's); its state is ``h`` itself.
- ``"transformer"``: :class:`TransformerCore`, causal attention over the last ``context`` steps (TransDreamer,
  STORM, TWM use transformer world models); its state is ``h``, a key/value cache of the window and the window's
  validity mask, so each step costs the same however long the episode (O(1) in time, O(context) in memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn


class NormGRUCell(nn.Module):
    """A GRU cell with LayerNorm on the gates and an update-gate bias of -1 (DreamerV2/V3): one matmul per step,
    and the normalisation keeps long imagined rollouts stable."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim + hidden_dim, 3 * hidden_dim, bias=False)
        self.norm = nn.LayerNorm(3 * hidden_dim)
        self.state_size = hidden_dim

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """``(B, input_dim), (B, hidden_dim) -> (B, hidden_dim)``."""
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h


class _Block(nn.Module):
    """A pre-norm transformer block: attention (its projections; the attention itself is the core's) and an MLP."""

    def __init__(self, dim: int, heads: int, context: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))
        # A learned bias per head and age (0 = the current step): relative positions, which stay right as the window
        # slides, where absolute position embeddings would not.
        self.age_bias = nn.Parameter(torch.zeros(heads, context))


class TransformerCore(nn.Module):
    """Causal self-attention over the last ``context`` inputs, with a key/value cache (see the module docstring).

    One step embeds ``x_t`` as a token, attends from it to the cached keys and values of the ``context - 1``
    previous tokens of the episode and itself (a reset empties the window), and reads ``h_t`` from the last block's
    output. :meth:`sequence` computes the same outputs for a whole sequence at once, without a cache. Each layer
    looks ``context - 1`` steps back, so ``layers`` layers see ``layers * (context - 1)`` steps into the past (the
    cached keys of a deeper layer were computed when their step was current, from what it saw then).

    Args:
        input_dim: size of ``x`` (also the token width).
        hidden_dim: size of ``h``.
        context: tokens attended to, the current one included.
        layers: transformer blocks.
        heads: attention heads (must divide ``input_dim``).
    """

    def __init__(self, input_dim: int, hidden_dim: int, *, context: int = 16, layers: int = 1, heads: int = 4) -> None:
        super().__init__()
        if context < 1 or layers < 1 or heads < 1 or input_dim % heads:
            raise ValueError(
                f"TransformerCore: need context, layers, heads >= 1 and heads dividing input_dim={input_dim}, got "
                f"context={context}, layers={layers}, heads={heads}"
            )
        self.dim, self.hidden_dim, self.context, self.layers, self.heads = input_dim, hidden_dim, context, layers, heads
        self.blocks = nn.ModuleList(_Block(input_dim, heads, context) for _ in range(layers))
        self.norm = nn.LayerNorm(input_dim)
        self.out = nn.Linear(input_dim, hidden_dim)
        self.cache_size = layers * 2 * context * input_dim
        #: Width of the carried state: ``[h | keys and values (layers, 2, context, dim) | mask (context)]``.
        self.state_size = hidden_dim + self.cache_size + context

    def _attend(self, block: _Block, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, valid: Tensor) -> Tensor:
        """Attention of queries ``(B, Q, D)`` over keys/values ``(B, S, D)`` with an additive ``bias`` ``(heads, Q,
        S)`` and a boolean ``valid`` ``(B, Q, S)`` -> ``(B, Q, D)``."""
        batch, queries, sources, dh = q.shape[0], q.shape[1], k.shape[1], self.dim // self.heads
        q = q.reshape(batch, queries, self.heads, dh).transpose(1, 2)  # (B, Q, D) -> (B, heads, Q, dh)
        k = k.reshape(batch, sources, self.heads, dh).transpose(1, 2)  # (B, S, D) -> (B, heads, S, dh)
        v = v.reshape(batch, sources, self.heads, dh).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias  # (B, heads, Q, S)
        scores = scores.masked_fill(~valid.unsqueeze(1), float("-inf"))
        out = scores.softmax(-1) @ v  # (B, heads, Q, dh)
        return block.proj(out.transpose(1, 2).reshape(batch, queries, self.dim))  # -> (B, Q, D)

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        """One cached step: ``x`` ``(B, input_dim)``, ``state`` ``(B, state_size)`` -> the next state."""
        batch, size, dim = x.shape[0], self.context, self.dim
        cache = state[:, self.hidden_dim : self.hidden_dim + self.cache_size].reshape(batch, self.layers, 2, size, dim)
        mask = torch.cat([state[:, -size + 1 :] if size > 1 else state[:, :0], torch.ones_like(state[:, :1])], -1)
        valid = (mask > 0.5).unsqueeze(1)  # (B, 1, K): slot j holds the token of age K - 1 - j
        token, caches = x.unsqueeze(1), []  # (B, 1, D)
        for layer, block in enumerate(self.blocks):
            q, k, v = block.qkv(block.norm1(token)).chunk(3, -1)  # (B, 1, D) each
            keys = torch.cat([cache[:, layer, 0, 1:], k], 1)  # slide the window: (B, K, D)
            values = torch.cat([cache[:, layer, 1, 1:], v], 1)
            bias = block.age_bias.flip(-1).unsqueeze(1)  # (heads, K) by age -> (heads, 1, K) by slot
            token = token + self._attend(block, q, keys, values, bias, valid)
            token = token + block.ffn(block.norm2(token))
            caches.append(torch.stack([keys, values], 1))  # (B, 2, K, D)
        h = self.out(self.norm(token[:, 0]))
        return torch.cat([h, torch.stack(caches, 1).reshape(batch, -1), mask], -1)

    def sequence(self, xs: Tensor, is_first: Tensor | None = None) -> Tensor:
        """The outputs ``h`` ``(B, T, hidden_dim)`` for inputs ``xs`` ``(B, T, input_dim)`` from an empty window, all
        steps at once (no cache); ``is_first`` ``(B, T)`` starts a new episode (the window empties) before a step."""
        batch, steps = xs.shape[:2]
        device = xs.device
        t = torch.arange(steps, device=device)
        age = t.view(-1, 1) - t.view(1, -1)  # (T, T): age of source s seen from query t
        window = (age >= 0) & (age < self.context)
        if is_first is None:
            episode = torch.zeros(batch, steps, dtype=torch.long, device=device)
        else:
            episode = is_first.long().cumsum(1)  # episode index of each step
        valid = window & (episode.unsqueeze(2) == episode.unsqueeze(1))  # (B, T, T)
        token = xs
        for block in self.blocks:
            q, k, v = block.qkv(block.norm1(token)).chunk(3, -1)
            bias = block.age_bias[:, age.clamp(0, self.context - 1)]  # (heads, T, T)
            token = token + self._attend(block, q, k, v, bias, valid)
            token = token + block.ffn(block.norm2(token))
        return self.out(self.norm(token))


#: Dynamics cores by name, for ``RecurrentStateSpaceModel(core=...)`` (a name keeps checkpoints JSON); each is
#: built as ``factory(input_dim, hidden_dim, **core_kwargs)``.
DYNAMICS_CORES: dict[str, Callable[..., nn.Module]] = {"gru": NormGRUCell, "transformer": TransformerCore}
