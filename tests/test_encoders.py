"""Observation encoders and decoders (ca11_agents.world_models.encoders): bit-identity of the vector MLPs with the
former inline ``mlp`` encoder/decoder, the CNN shapes and training, Dict spaces and the space checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from ca11_agents.common.distributions import symexp, symlog
from ca11_agents.common.nets import mlp
from ca11_agents.world_models.encoders import (
    CNNDecoder,
    CNNEncoder,
    MLPDecoder,
    MLPEncoder,
    MultiDecoder,
    MultiEncoder,
    ObservationNormalizer,
    build_decoder,
    build_encoder,
    channel_first_space,
    check_observation_space,
    image_stages,
)


def image_box(*shape: int) -> spaces.Box:
    return spaces.Box(0, 255, shape, np.uint8)


def random_images(*shape: int) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8)


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("layers", [0, 1, 2])
def test_mlp_encoder_is_bit_identical_to_mlp(layers: int) -> None:
    obs_dim, units = 5, 16
    torch.manual_seed(0)
    enc = build_encoder(spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32), units=units, layers=layers)
    after_enc = torch.rand(3)
    torch.manual_seed(0)
    ref = mlp(obs_dim, 0, [units] * layers)
    after_ref = torch.rand(3)
    assert isinstance(enc, MLPEncoder)
    assert torch.equal(after_enc, after_ref)  # same random-number use
    assert_same_params(enc, ref)
    if layers:
        assert list(enc.state_dict())[:2] == ["0.weight", "0.bias"]
    assert enc.embed_dim == (units if layers else obs_dim)
    x = torch.randn(2, 7, obs_dim) * 10
    out = enc(x)
    assert out.shape == (2, 7, enc.embed_dim) and out.dtype == torch.float32
    assert torch.equal(out, ref(symlog(x)))
    raw = MLPEncoder(obs_dim, units=units, layers=layers, symlog_obs=False)
    raw.load_state_dict(ref.state_dict())
    assert torch.equal(raw(x), ref(x))


def test_mlp_decoder_is_bit_identical_to_mlp() -> None:
    feature_dim, obs_dim, units, layers = 12, 4, 16, 2
    torch.manual_seed(1)
    dec = build_decoder(spaces.Box(-1, 1, (obs_dim,), np.float32), feature_dim, units=units, layers=layers)
    torch.manual_seed(1)
    ref = mlp(feature_dim, obs_dim, [units] * layers)
    assert isinstance(dec, MLPDecoder)
    assert_same_params(dec, ref)
    feats, obs = torch.randn(2, 3, feature_dim), torch.randn(2, 3, obs_dim) * 5
    assert torch.equal(dec(feats), symexp(ref(feats)))
    loss = dec.loss(feats, obs)
    assert loss.shape == (2, 3)
    assert torch.equal(loss, (ref(feats) - symlog(obs)).pow(2).sum(-1))
    raw = MLPDecoder(feature_dim, obs_dim, units=units, layers=layers, symlog_obs=False)
    raw.load_state_dict(ref.state_dict())
    assert torch.equal(raw(feats), ref(feats))
    assert torch.equal(raw.loss(feats, obs), (ref(feats) - obs).pow(2).sum(-1))


def test_integer_vector_observations_are_encoded_as_float() -> None:
    space = spaces.Box(0, 10, (3,), np.int64)
    enc = build_encoder(space, units=8, layers=1)
    dec = build_decoder(space, 6, units=8, layers=1)
    obs = torch.randint(0, 10, (4, 3))
    assert enc(obs).dtype == torch.float32
    assert dec.loss(torch.randn(4, 6), obs).shape == (4,)


def test_cnn_encoder_decoder_shapes_and_training() -> None:
    torch.manual_seed(0)
    space, feature_dim = image_box(3, 64, 64), 32
    enc = build_encoder(space, units=8, layers=1, cnn_depth=4)
    dec = build_decoder(space, feature_dim, units=8, layers=1, cnn_depth=4)
    assert isinstance(enc, CNNEncoder) and isinstance(dec, CNNDecoder)
    assert enc.embed_dim == 4 * 8 * 4 * 4  # 4 stages: 32, 16, 8, 4; channels 4, 8, 16, 32
    obs = random_images(2, 5, 3, 64, 64)
    embed = enc(obs)
    assert embed.shape == (2, 5, enc.embed_dim) and embed.dtype == torch.float32
    assert enc(obs[0, 0]).shape == (enc.embed_dim,)  # no leading dims
    head = torch.nn.Linear(enc.embed_dim, feature_dim)
    pred = dec(head(embed))
    assert pred.shape == (2, 5, 3, 64, 64) and pred.dtype == torch.float32
    assert pred.min() >= 0 and pred.max() <= 255
    params = [*enc.parameters(), *head.parameters(), *dec.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(6):
        loss = dec.loss(head(enc(obs)), obs)
        assert loss.shape == (2, 5)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        losses.append(loss.mean().item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(("shape", "stages"), [((3, 32, 32), 3), ((1, 64, 128), 4), ((4, 16, 16), 2), ((3, 8, 8), 1)])
def test_other_image_sizes(shape: tuple[int, int, int], stages: int) -> None:
    assert image_stages(*shape[1:]) == stages
    enc = build_encoder(image_box(*shape), units=8, layers=1, cnn_depth=2)
    dec = build_decoder(image_box(*shape), 10, units=8, layers=1, cnn_depth=2)
    h, w = shape[1] >> stages, shape[2] >> stages
    assert min(h, w) == 4 and enc.embed_dim == 2 * 2 ** (stages - 1) * h * w
    obs = random_images(3, *shape)
    assert enc(obs).shape == (3, enc.embed_dim)
    assert dec(torch.randn(3, 10)).shape == (3, *shape)
    assert dec.loss(torch.randn(3, 10), obs).shape == (3,)


@pytest.mark.parametrize("shape", [(3, 84, 84), (84, 84, 3), (3, 64, 72), (3, 48, 48), (3, 4, 4), (3, 12, 16)])
def test_unsupported_image_sizes_suggest_pixel_observation(shape: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="PixelObservation") as info:
        check_observation_space(image_box(*shape))
    assert "supported" in str(info.value)
    with pytest.raises(ValueError, match="PixelObservation"):
        build_encoder(image_box(*shape), units=8, layers=1)


def test_channel_last_images_are_checked_but_builders_need_channel_first() -> None:
    space = image_box(64, 64, 3)
    check_observation_space(space)
    check_observation_space(spaces.Dict({"pixels": space}))
    with pytest.raises(ValueError, match="channel-first"):
        build_encoder(space, units=8, layers=1)
    with pytest.raises(ValueError, match="channel-first"):
        build_decoder(spaces.Dict({"pixels": space}), 8, units=8, layers=1)
    transposed = channel_first_space(space)
    assert transposed.shape == (3, 64, 64) and transposed.dtype == np.uint8
    assert build_encoder(transposed, units=8, layers=1, cnn_depth=2).embed_dim == 2 * 8 * 4 * 4
    vector = spaces.Box(-1, 1, (3,))
    assert channel_first_space(vector) is vector
    assert channel_first_space(spaces.Dict({"pixels": space}))["pixels"].shape == (3, 64, 64)


def test_dict_of_image_and_vector() -> None:
    torch.manual_seed(0)
    space = spaces.Dict({"state": spaces.Box(-1, 1, (4,), np.float32), "pixels": image_box(3, 32, 32)})
    check_observation_space(space)
    enc = build_encoder(space, units=16, layers=2, cnn_depth=2)
    dec = build_decoder(space, 20, units=16, layers=2, cnn_depth=2)
    assert isinstance(enc, MultiEncoder) and isinstance(dec, MultiDecoder)
    assert enc.keys == ["pixels", "state"]
    cnn_dim = 2 * 4 * 4 * 4  # 3 stages: 16, 8, 4; channels 2, 4, 8
    assert enc.encoders["pixels"].embed_dim == cnn_dim
    assert enc.embed_dim == cnn_dim + 16
    obs = {"pixels": random_images(2, 5, 3, 32, 32), "state": torch.rand(2, 5, 4) * 2 - 1}
    embed = enc(obs)
    assert embed.shape == (2, 5, cnn_dim + 16)
    assert torch.equal(embed[..., :cnn_dim], enc.encoders["pixels"](obs["pixels"]))
    assert torch.equal(embed[..., cnn_dim:], enc.encoders["state"](obs["state"]))
    feats = torch.randn(2, 5, 20)
    pred = dec(feats)
    assert set(pred) == {"pixels", "state"}
    assert pred["pixels"].shape == (2, 5, 3, 32, 32) and pred["state"].shape == (2, 5, 4)
    loss = dec.loss(feats, obs)
    assert loss.shape == (2, 5)
    parts = dec.decoders["pixels"].loss(feats, obs["pixels"]) + dec.decoders["state"].loss(feats, obs["state"])
    assert torch.allclose(loss, parts)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Tuple((spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))),
        spaces.Box(-1, 1, (4, 5)),
        spaces.Box(0, 1, (3, 64, 64), np.float32),
        spaces.Box(0, 1, (3, 64, 64), np.uint8),  # uint8 but not 0..255
        spaces.Box(0, 255, (64, 3, 64), np.uint8),  # channels in the middle
        spaces.Box(0, 255, (16, 64, 64), np.uint8),  # too many channels
        spaces.Discrete(3),
        spaces.Box(-1, 1, (0,)),
        spaces.Box(-1, 1, ()),
        spaces.Dict({"inner": spaces.Dict({"x": spaces.Box(-1, 1, (3,))})}),
        spaces.Dict({"a": spaces.Box(-1, 1, (3,)), "b": spaces.Discrete(2)}),
        spaces.Dict({}),
        spaces.Dict({"a.b": spaces.Box(-1, 1, (3,))}),
    ],
    ids=repr,
)
def test_unsupported_spaces_raise(space: spaces.Space) -> None:
    with pytest.raises(ValueError, match="supported") as info:
        check_observation_space(space, owner="Dreamer")
    message = str(info.value)
    assert repr(space) in message and message.startswith("Dreamer")
    with pytest.raises(ValueError, match="supported"):
        build_encoder(space, units=8, layers=1)
    with pytest.raises(ValueError, match="supported"):
        build_decoder(space, 8, units=8, layers=1)


def test_supported_spaces_pass() -> None:
    for space in [
        spaces.Box(-1, 1, (1,)),
        spaces.Box(0, 5, (3,), np.int32),
        spaces.Box(-1, 1, (6,), np.float64),
        image_box(1, 64, 64),
        image_box(64, 64, 4),
        image_box(3, 64, 128),
        image_box(3, 64, 96),  # 4 stages: 4x6
        spaces.Dict({"pixels": image_box(64, 64, 3), "state": spaces.Box(-1, 1, (3,))}),
    ]:
        check_observation_space(space)


def test_the_observation_normalizer_keeps_the_mean_and_variance_of_everything_it_saw() -> None:
    torch.manual_seed(0)
    space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (3,), np.float32), "pixels": image_box(3, 8, 8)})
    norm = ObservationNormalizer(space)
    scales = torch.tensor([2.0, 0.02, 300.0])
    seen = [torch.randn(n, 4, 3) * scales + 5.0 for n in (1, 7, 3)]  # batches of windows (B, T, 3)
    for part in seen:
        norm.update({"state": part, "pixels": random_images(part.shape[0], 4, 3, 8, 8)})
    flat = torch.cat([part.reshape(-1, 3) for part in seen]).double()
    assert norm.count_0.item() == flat.shape[0]
    assert torch.allclose(norm.mean_0.double(), flat.mean(0), rtol=1e-5)
    assert torch.allclose(norm.var_0.double(), flat.var(0, unbiased=False), rtol=1e-4)
    # Standardised, every dimension spreads alike whatever its scale; images pass through untouched.
    frames = random_images(11, 4, 3, 8, 8)
    out = norm.normalize({"state": seen[1], "pixels": frames})
    assert out["pixels"] is frames
    assert torch.allclose(out["state"].reshape(-1, 3).std(0), torch.ones(3), atol=0.5)
    assert torch.allclose(norm.denormalize({"state": out["state"]})["state"], seen[1], rtol=1e-4, atol=1e-3)
    # A constant dimension stays finite (min_std) and outliers are clipped.
    const = ObservationNormalizer(spaces.Box(-1, 1, (2,), np.float32), clip=10.0)
    const.update(torch.zeros(5, 2))
    assert torch.equal(const.normalize(torch.tensor([[0.0, 1.0]])), torch.tensor([[0.0, 10.0]]))
    with pytest.raises(ValueError, match="clip > 0"):
        ObservationNormalizer(space, clip=0.0)
