"""Observation encoders and decoders, built from the observation space.

The seam: the RSSM does not know what an observation is. It takes an *encoder* (``obs -> (..., embed_dim)``, read
by the posterior) and a *decoder* (``features -> observation``) built here by :func:`build_encoder` and
:func:`build_decoder` from the Gymnasium observation space:

- a 1-D ``Box`` (a vector) gets an :class:`MLPEncoder` / :class:`MLPDecoder` (in symlog space, as DreamerV3);
- an image ``Box`` (uint8, channel-first ``(C, H, W)``) gets a :class:`CNNEncoder` / :class:`CNNDecoder`;
- a ``Dict`` of those gets a :class:`MultiEncoder` / :class:`MultiDecoder`, one part per key.

The world model's representation loss is ``decoder.loss(features, obs)``, a per-step ``(...)`` tensor. Any module
with that method can serve instead of a reconstruction decoder (e.g. a contrastive head that scores features
against embedded observations).

Images reach the encoders channel-first: Stable-Baselines3 wraps a channel-last env in ``VecTransposeImage``
before the agent sees a frame. :func:`check_observation_space` accepts both layouts (the agent checks the user's
space before SB3 transposes it), but the builders need the channel-first space and raise a ``ValueError`` on a
channel-last one; :func:`channel_first_space` converts it (as ``VecTransposeImage`` does).
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from torch import Tensor, nn

from ca11_agents.common.distributions import symexp, symlog
from ca11_agents.common.nets import mlp

__all__ = [
    "check_observation_space", "channel_first_space", "build_encoder", "build_decoder", "preprocess_image",
    "image_stages", "ChannelNorm", "MLPEncoder", "MLPDecoder", "CNNEncoder", "CNNDecoder", "MultiEncoder",
    "MultiDecoder", "ObservationNormalizer",
]  # fmt: skip

_SUPPORTED = (
    "supported observation spaces are: a 1-D Box of any float/int dtype (a vector); an image Box (3-D, uint8, "
    "bounds 0..255, channel-first (C, H, W) or channel-last (H, W, C) with 1 to 4 channels); and a Dict whose "
    "values are each one of those (no nesting)"
)
_SIZES = (
    "supported image sizes have min(H, W) a power of two >= 8 and H and W both divisible by 2**k, "
    "k = log2(min(H, W) / 4), e.g. 64x64, 32x32, 16x16 or 64x128"
)


def image_stages(height: int, width: int) -> int | None:
    """Conv stages (stride 2) that take an ``height x width`` image down to a smaller side of 4, or ``None`` if the
    CNN cannot encode and exactly decode that size (see the module's supported sizes)."""
    side = min(height, width)
    if side < 8 or side & (side - 1):  # not a power of two >= 8
        return None
    stages = side.bit_length() - 3  # log2(side / 4)
    return stages if height % 2**stages == 0 and width % 2**stages == 0 else None


def _image_layout(space: spaces.Space) -> str | None:
    """``"chw"`` or ``"hwc"`` for an image Box with 1 to 4 channels (SB3's heuristic: channels are the smallest
    dimension), else ``None``."""
    if not is_image_space(space, check_channels=False):
        return None
    shape = space.shape
    if int(np.argmin(shape)) == 1:  # channels in the middle: no layout (and SB3 would warn)
        return None
    layout = "chw" if is_image_space_channels_first(space) else "hwc"
    channels = shape[0] if layout == "chw" else shape[-1]
    return layout if 1 <= channels <= 4 else None


def _is_vector(space: spaces.Space) -> bool:
    """A 1-D, non-empty Box of a float or int dtype."""
    if not (isinstance(space, spaces.Box) and len(space.shape) == 1 and space.shape[0] > 0):
        return False
    return bool(np.issubdtype(space.dtype, np.floating) or np.issubdtype(space.dtype, np.integer))


def _check_leaf(space: spaces.Space, where: str, owner: str) -> None:
    """Check one vector or image Box; ``where`` names it in the message (the whole space, and the key if any)."""
    if _is_vector(space):
        return
    layout = _image_layout(space)
    if layout is None:
        raise ValueError(f"{owner}: observation space {where} is not supported; {_SUPPORTED}")
    height, width = space.shape[1:] if layout == "chw" else space.shape[:2]
    if image_stages(height, width) is None:
        raise ValueError(
            f"{owner}: image observation space {where} has size {height}x{width}, which the CNN encoder cannot "
            f"encode and exactly decode; {_SIZES}. Resize the frames, e.g. with "
            f"ca11_gym.wrappers.PixelObservation(env, size=64)"
        )


def check_observation_space(space: gym.Space, owner: str = "ca11") -> None:
    """Raise a ``ValueError`` naming ``space`` and what is supported unless encoders can be built for it.

    Supported are a 1-D ``Box`` (a vector), an image ``Box`` (3-D uint8 with bounds 0..255, channel-first or
    channel-last with 1 to 4 channels, of a size accepted by :func:`image_stages`) and a ``Dict`` of those.
    ``owner`` starts the message (e.g. the agent's class name).
    """
    if not isinstance(space, spaces.Dict):
        _check_leaf(space, repr(space), owner)
        return
    if len(space.spaces) == 0:
        raise ValueError(f"{owner}: observation space {space!r} is an empty Dict, which is not supported; {_SUPPORTED}")
    for key, sub in space.spaces.items():
        # The parts live in an nn.ModuleDict: its keys must be non-empty strings without "." or a method's name.
        if not isinstance(key, str) or not key or "." in key or hasattr(nn.ModuleDict(), key):
            raise ValueError(
                f"{owner}: observation space {space!r} has the key {key!r}, which is not supported: Dict keys must be "
                f"non-empty strings without '.' that are not attributes of torch.nn.ModuleDict"
            )
        _check_leaf(sub, f"{space!r} (key {key!r}: {sub!r})", owner)


def channel_first_space(space: gym.Space) -> gym.Space:
    """``space`` with channel-last image Boxes (also a Dict's) transposed to channel-first, as SB3's
    ``VecTransposeImage`` does; other spaces are returned unchanged."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({key: channel_first_space(sub) for key, sub in space.spaces.items()})
    if _image_layout(space) == "hwc":
        height, width, channels = space.shape
        return spaces.Box(0, 255, (channels, height, width), np.uint8)
    return space


def preprocess_image(obs: Tensor) -> Tensor:
    """Scale uint8 pixels to ``[-0.5, 0.5]`` float32: the encoder's input and the decoder's target."""
    return obs.float() / 255 - 0.5


class ObservationNormalizer(nn.Module):
    """Running per-dimension standardisation of the vector parts of observations: ``(obs - mean) / std``, clipped.

    The reconstruction loss is a sum of squared errors over an observation's dimensions, so without it each
    dimension counts by its scale: a cart-pole's pole angle spreads over a fifteenth of the cart's position while
    it balances, and with ``symlog`` the world model reconstructed it to 30 % of its spread, standardised to 14 %
    (benchmarks/README.md, "The world model's view of the pole"). Standardised, every dimension weighs alike, in
    the encoder's input and in the decoder's target.

    The statistics are the mean and variance of every observation passed to :meth:`update` (Chan et al.'s parallel
    merge, the rule of SB3's ``RunningMeanStd``, kept here in torch buffers so that they live on the model's device
    and in its state dict). Image parts pass through untouched (:func:`preprocess_image` scales them).

    Args:
        space: the (channel-first) observation space the world model encodes.
        clip: standardised values are clipped to ``[-clip, clip]`` (a rare outlier cannot dominate the loss).
        min_std: the standard deviation never falls below this (a constant dimension stays finite).
    """

    def __init__(self, space: spaces.Space, clip: float = 10.0, min_std: float = 1e-3) -> None:
        super().__init__()
        if not (clip > 0 and min_std > 0):
            raise ValueError(f"ObservationNormalizer: need clip > 0 and min_std > 0, got {clip}, {min_std}")
        parts = sorted(space.spaces.items()) if isinstance(space, spaces.Dict) else [(None, space)]
        vectors = [(key, sub) for key, sub in parts if _is_vector(sub)]
        self.keys = [key for key, _ in vectors]
        self.clip, self.min_std = float(clip), float(min_std)
        for i, (_, sub) in enumerate(vectors):
            self.register_buffer(f"count_{i}", torch.zeros(()))
            self.register_buffer(f"mean_{i}", torch.zeros(sub.shape[0]))
            self.register_buffer(f"var_{i}", torch.ones(sub.shape[0]))

    def _leaves(self, obs: Tensor | Mapping[str, Tensor]) -> list[tuple[int, Tensor]]:
        return [(i, obs if key is None else obs[key]) for i, key in enumerate(self.keys)]

    def _mean_std(self, i: int) -> tuple[Tensor, Tensor]:
        return getattr(self, f"mean_{i}"), getattr(self, f"var_{i}").sqrt().clamp(min=self.min_std)

    def _replace(self, obs: Tensor | Mapping[str, Tensor], new: dict[int, Tensor]) -> Tensor | dict[str, Tensor]:
        if not isinstance(obs, Mapping):
            return new[0] if new else obs
        out = dict(obs)
        out.update({self.keys[i]: x for i, x in new.items()})
        return out

    @torch.no_grad()
    def update(self, obs: Tensor | Mapping[str, Tensor]) -> None:
        """Fold observations ``(..., dim)`` (a dict of them for a ``Dict`` space) into the statistics."""
        for i, x in self._leaves(obs):
            x = x.reshape(-1, x.shape[-1]).float()
            count, mean, var = getattr(self, f"count_{i}"), getattr(self, f"mean_{i}"), getattr(self, f"var_{i}")
            n = float(x.shape[0])
            if n == 0:
                continue
            batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
            total = count + n
            delta = batch_mean - mean
            m2 = var * count + batch_var * n + delta.pow(2) * count * n / total
            mean.add_(delta * n / total)
            var.copy_(m2 / total)
            count.add_(n)  # in place, no host sync: this runs in every world-model update

    def normalize(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
        """Standardised, clipped vector parts ``(..., dim)`` float32; image parts as they were."""
        new = {}
        for i, x in self._leaves(obs):
            mean, std = self._mean_std(i)
            new[i] = ((x.float() - mean) / std).clamp(-self.clip, self.clip)
        return self._replace(obs, new)

    def denormalize(self, pred: Tensor | Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
        """The inverse of :meth:`normalize` (without the clip), for a decoder's predictions."""
        new = {}
        for i, x in self._leaves(pred):
            mean, std = self._mean_std(i)
            new[i] = x * std + mean
        return self._replace(pred, new)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(N, C, H, W)`` map, at every pixel: ``ChannelNorm(channels)``."""

    def forward(self, x: Tensor) -> Tensor:
        # (N, C, H, W) -> (N, H, W, C): normalise the last dimension -> back to (N, C, H, W)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MLPEncoder(nn.Sequential):
    """Vector encoder ``(..., obs_dim) -> (..., embed_dim)``: ``mlp(obs_dim, 0, [units] * layers)`` on
    ``symlog(obs)``.

    It holds exactly :func:`~ca11_agents.common.nets.mlp`'s layers (state-dict keys ``0.weight, 0.bias, ...``,
    same parameter initialisation and random-number use), so it reproduces the former inline encoder bit for bit.
    """

    def __init__(self, obs_dim: int, *, units: int, layers: int, symlog_obs: bool = True) -> None:
        super().__init__(*mlp(obs_dim, 0, [units] * layers))
        self.symlog_obs = symlog_obs
        self.embed_dim: int = units if layers else obs_dim

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.float()  # no copy for float32
        return nn.Sequential.forward(self, symlog(x) if self.symlog_obs else x)


class MLPDecoder(nn.Sequential):
    """Vector decoder ``(..., feature_dim) -> (..., obs_dim)``: ``mlp(feature_dim, obs_dim, [units] * layers)``,
    predicting ``symlog(obs)`` (with ``symlog_obs``). Holds exactly ``mlp``'s layers, as :class:`MLPEncoder`."""

    def __init__(self, feature_dim: int, obs_dim: int, *, units: int, layers: int, symlog_obs: bool = True) -> None:
        super().__init__(*mlp(feature_dim, obs_dim, [units] * layers))
        self.symlog_obs = symlog_obs

    def net_out(self, features: Tensor) -> Tensor:
        """The network's raw output ``(..., obs_dim)`` (in symlog space with ``symlog_obs``)."""
        return nn.Sequential.forward(self, features)

    def forward(self, features: Tensor) -> Tensor:
        """Predicted observation ``(..., obs_dim)`` in observation units."""
        out = self.net_out(features)
        return symexp(out) if self.symlog_obs else out

    def loss(self, features: Tensor, obs: Tensor) -> Tensor:
        """Per-step sum of squared errors ``(...)`` against ``symlog(obs)`` (or ``obs``)."""
        target = symlog(obs.float()) if self.symlog_obs else obs.float()
        return (self.net_out(features) - target).pow(2).sum(-1)


def _check_image_shape(shape: tuple[int, ...], who: str) -> int:
    """The conv stages for a channel-first ``(C, H, W)`` shape, or a ``ValueError``."""
    if len(shape) != 3 or shape[0] < 1:
        raise ValueError(f"{who}: shape must be channel-first (C, H, W), got {shape}")
    stages = image_stages(shape[1], shape[2])
    if stages is None:
        raise ValueError(f"{who}: image size {shape[1]}x{shape[2]} is not supported; {_SIZES}")
    return stages


class CNNEncoder(nn.Module):
    """Image encoder ``(..., C, H, W) uint8 -> (..., embed_dim)`` in DreamerV3's manner.

    Pixels are scaled by :func:`preprocess_image`, then conv stages (kernel 4, stride 2, padding 1, ``depth * 2**i``
    channels, each followed by :class:`ChannelNorm` and SiLU) halve the image until its smaller side is 4; the
    final map is flattened: ``embed_dim = depth * 2**(stages - 1) * (H / 2**stages) * (W / 2**stages)``.

    ``shape`` is channel-first ``(C, H, W)`` of a size accepted by :func:`image_stages`; ``depth`` is the channels
    of the first stage (doubled at each next one).
    """

    def __init__(self, shape: tuple[int, int, int], depth: int = 16) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        stages = _check_image_shape(self.shape, "CNNEncoder")
        convs: list[nn.Module] = []
        channels = self.shape[0]
        for i in range(stages):
            convs += [nn.Conv2d(channels, depth * 2**i, 4, 2, 1), ChannelNorm(depth * 2**i), nn.SiLU()]
            channels = depth * 2**i
        self.convs = nn.Sequential(*convs)
        self.embed_dim: int = channels * (self.shape[1] >> stages) * (self.shape[2] >> stages)

    def forward(self, obs: Tensor) -> Tensor:
        if tuple(obs.shape[-3:]) != self.shape:
            raise ValueError(f"CNNEncoder: expected images (..., {self.shape}), got {tuple(obs.shape)}")
        lead = obs.shape[:-3]
        x = preprocess_image(obs).reshape(-1, *self.shape)  # (..., C, H, W) -> (N, C, H, W)
        x = self.convs(x)  # (N, C', h, w), min(h, w) == 4
        return x.reshape(*lead, self.embed_dim)  # (N, C', h, w) -> (..., C' * h * w)


class CNNDecoder(nn.Module):
    """Image decoder ``(..., feature_dim) -> (..., C, H, W)``, mirroring :class:`CNNEncoder`.

    A linear layer makes the encoder's last ``(C', h, w)`` map; transposed convs (kernel 4, stride 2, padding 1,
    :class:`ChannelNorm` and SiLU but after the last) double it back to ``(C, H, W)`` in the scaled pixel domain of
    :func:`preprocess_image`.
    """

    def __init__(self, feature_dim: int, shape: tuple[int, int, int], depth: int = 16) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        stages = _check_image_shape(self.shape, "CNNDecoder")
        channels = depth * 2 ** (stages - 1)
        self.start = (channels, self.shape[1] >> stages, self.shape[2] >> stages)
        self.linear = nn.Linear(feature_dim, channels * self.start[1] * self.start[2])
        deconvs: list[nn.Module] = []
        for i in reversed(range(stages - 1)):
            deconvs += [nn.ConvTranspose2d(channels, depth * 2**i, 4, 2, 1), ChannelNorm(depth * 2**i), nn.SiLU()]
            channels = depth * 2**i
        deconvs.append(nn.ConvTranspose2d(channels, self.shape[0], 4, 2, 1))
        self.deconvs = nn.Sequential(*deconvs)

    def net_out(self, features: Tensor) -> Tensor:
        """The raw prediction ``(..., C, H, W)``, in the scaled domain of :func:`preprocess_image`."""
        lead = features.shape[:-1]
        x = self.linear(features).reshape(-1, *self.start)  # (..., C'*h*w) -> (N, C', h, w)
        x = self.deconvs(x)  # (N, C', h, w) -> (N, C, H, W)
        assert tuple(x.shape[1:]) == self.shape, (tuple(x.shape), self.shape)
        return x.reshape(*lead, *self.shape)  # (N, C, H, W) -> (..., C, H, W)

    def forward(self, features: Tensor) -> Tensor:
        """Predicted image ``(..., C, H, W)``, float pixels clamped to ``[0, 255]``."""
        return ((self.net_out(features) + 0.5) * 255).clamp(0, 255)

    def loss(self, features: Tensor, obs: Tensor) -> Tensor:
        """Per-step sum of squared errors ``(...)`` over ``(C, H, W)``, in the scaled domain."""
        return (self.net_out(features) - preprocess_image(obs)).pow(2).sum((-3, -2, -1))


def _leaf_encoder(space: spaces.Box, units: int, layers: int, symlog_obs: bool, cnn_depth: int) -> nn.Module:
    if _is_vector(space):
        return MLPEncoder(space.shape[0], units=units, layers=layers, symlog_obs=symlog_obs)
    return CNNEncoder(space.shape, cnn_depth)


def _leaf_decoder(
    space: spaces.Box, feature_dim: int, units: int, layers: int, symlog_obs: bool, cnn_depth: int
) -> nn.Module:
    if _is_vector(space):
        return MLPDecoder(feature_dim, space.shape[0], units=units, layers=layers, symlog_obs=symlog_obs)
    return CNNDecoder(feature_dim, space.shape, cnn_depth)


class MultiEncoder(nn.Module):
    """Encoder for a ``Dict`` space: one :class:`MLPEncoder` or :class:`CNNEncoder` per key (sorted), their
    embeddings concatenated in key order (``embed_dim`` is the sum)."""

    def __init__(
        self, space: spaces.Dict, *, units: int, layers: int, symlog_obs: bool = True, cnn_depth: int = 16
    ) -> None:
        super().__init__()
        self.keys = sorted(space.spaces)
        parts = {k: _leaf_encoder(space[k], units, layers, symlog_obs, cnn_depth) for k in self.keys}
        self.encoders = nn.ModuleDict(parts)
        self.embed_dim: int = sum(enc.embed_dim for enc in self.encoders.values())

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        """``{key: (..., *space[key].shape)} -> (..., embed_dim)``."""
        return torch.cat([self.encoders[k](obs[k]) for k in self.keys], dim=-1)


class MultiDecoder(nn.Module):
    """Decoder for a ``Dict`` space: one :class:`MLPDecoder` or :class:`CNNDecoder` per key (sorted);
    ``forward`` returns a dict of predictions and ``loss`` the sum of the parts' losses."""

    def __init__(
        self, space: spaces.Dict, feature_dim: int, *, units: int, layers: int, symlog_obs: bool = True,
        cnn_depth: int = 16,
    ) -> None:  # fmt: skip
        super().__init__()
        self.keys = sorted(space.spaces)
        self.decoders = nn.ModuleDict(
            {k: _leaf_decoder(space[k], feature_dim, units, layers, symlog_obs, cnn_depth) for k in self.keys}
        )

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Predicted observation: ``{key: (..., *space[key].shape)}`` in observation units."""
        return {k: self.decoders[k](features) for k in self.keys}

    def loss(self, features: Tensor, obs: Mapping[str, Tensor]) -> Tensor:
        """Per-step reconstruction loss ``(...)``: the sum over keys."""
        losses = [self.decoders[k].loss(features, obs[k]) for k in self.keys]
        return sum(losses[1:], losses[0])


def _check_channel_first(space: gym.Space) -> None:
    parts = space.spaces.items() if isinstance(space, spaces.Dict) else [(None, space)]
    for key, sub in parts:
        if _image_layout(sub) == "hwc":
            where = f" (key {key!r})" if key is not None else ""
            raise ValueError(
                f"encoders take channel-first images, got the channel-last {sub!r}{where}: the agent transposes "
                f"images to channel-first (SB3's VecTransposeImage) before building them; build from "
                f"channel_first_space(space)"
            )


def build_encoder(
    space: gym.Space, *, units: int, layers: int, symlog_obs: bool = True, cnn_depth: int = 16
) -> nn.Module:
    """The encoder for ``space``: ``forward(obs) -> (..., embed_dim)`` float32, with an int ``embed_dim``.

    ``space`` is a supported, channel-first space (else ``ValueError``; see :func:`channel_first_space`);
    ``units``/``layers`` size the vector MLPs, ``symlog_obs`` encodes ``symlog`` of vectors, ``cnn_depth`` is the
    channels of the first conv stage of image encoders.
    """
    check_observation_space(space)
    _check_channel_first(space)
    if isinstance(space, spaces.Dict):
        return MultiEncoder(space, units=units, layers=layers, symlog_obs=symlog_obs, cnn_depth=cnn_depth)
    return _leaf_encoder(space, units, layers, symlog_obs, cnn_depth)


def build_decoder(
    space: gym.Space, feature_dim: int, *, units: int, layers: int, symlog_obs: bool = True, cnn_depth: int = 16
) -> nn.Module:
    """The decoder for ``space``: ``forward(features) -> prediction`` in observation units (``(..., *shape)`` float,
    or a dict of those for a ``Dict``) and ``loss(features, obs) -> (...)`` per-step reconstruction loss.

    Arguments and errors as :func:`build_encoder`; ``feature_dim`` is the size of the features decoded.
    """
    check_observation_space(space)
    _check_channel_first(space)
    if isinstance(space, spaces.Dict):
        return MultiDecoder(space, feature_dim, units=units, layers=layers, symlog_obs=symlog_obs, cnn_depth=cnn_depth)
    return _leaf_decoder(space, feature_dim, units, layers, symlog_obs, cnn_depth)
