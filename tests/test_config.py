"""Typed configs (ca11_agents.experiments.config and runconfig): JSON round-trip, overrides, errors that name the
key, and learner configs that stay equal to the learners' constructors."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from ca11_agents import DreamerAgent, RSSMAgent, WorldModelAgent
from ca11_agents.experiments.config import ConfigError, apply_overrides, field_docs, parse_value
from ca11_agents.experiments.runconfig import (
    PRESETS,
    RUN_LEVEL_ARGS,
    RunConfig,
    TrainConfig,
    config_class,
    resolve_hyperparams,
)


def test_every_named_run_round_trips_through_json(tmp_path: Path) -> None:
    for name, config in PRESETS.items():
        config.save(tmp_path / f"{name}.json")
        assert RunConfig.load(tmp_path / f"{name}.json") == config
        assert RunConfig.from_dict(json.loads((tmp_path / f"{name}.json").read_text())) == config


def test_overrides_reach_nested_sections_and_free_form_hyperparameters() -> None:
    config = apply_overrides(RunConfig(), ["train.steps=100", "env.id=CartPole-v1", "env.kwargs.render_mode=null",
                                           "hyperparams.policy_kwargs.units=64", "hyperparams.gamma=0.9"])  # fmt: skip
    assert config.train.steps == 100 and config.env.id == "CartPole-v1" and config.env.kwargs == {"render_mode": None}
    assert config.hyperparams == {"policy_kwargs": {"units": 64}, "gamma": 0.9}
    assert apply_overrides(config, ["hyperparams.policy_kwargs.classes=8"]).hyperparams["policy_kwargs"] == {
        "units": 64, "classes": 8}  # fmt: skip
    assert parse_value("1e-3") == 0.001 and parse_value("[64, 64]") == [64, 64] and parse_value("Pendulum-v1") == (
        "Pendulum-v1")  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.stepz=1"], "unknown key 'train.stepz'; allowed in train: steps, seed"),
        (["train.steps=1.5"], "train.steps must be an integer, got 1.5"),
        (["train.progress_bar=yes"], "train.progress_bar must be true or false"),
        (["algo.x=1"], "algo is not a section"),
        (["nonsense"], "override 'nonsense' is not key=value"),
        (["train.eval_every=0"], "train.eval_every must be a positive integer"),
    ],
)
def test_bad_overrides_name_the_key_and_what_is_allowed(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_overrides(RunConfig(), overrides)


@pytest.mark.parametrize("learner", [DreamerAgent, WorldModelAgent, RSSMAgent])
def test_learner_configs_are_the_constructors_hyperparameters(learner: type) -> None:
    name = {DreamerAgent: "dreamer", WorldModelAgent: "world_model_agent", RSSMAgent: "rssm_agent"}[learner]
    typed = config_class(name)
    signature = inspect.signature(learner.__init__).parameters
    expected = {k: p.default for k, p in signature.items() if k not in RUN_LEVEL_ARGS}
    defaults = typed().to_dict()
    assert set(defaults) == set(expected)
    assert all(defaults[k] == (v if v is not None else None) for k, v in expected.items() if not isinstance(v, dict))
    docs = field_docs(typed)
    assert all(docs.get(k) for k in expected), "every hyperparameter is documented in the class's Args"


def test_field_docs_are_read_from_the_source() -> None:
    assert field_docs(TrainConfig)["eval_every"].startswith("Environment steps between evaluations")


def test_hyperparameters_resolve_in_layers() -> None:
    config = RunConfig(preset="v3", hyperparams={"gamma": 0.95, "policy_kwargs": {"units": 64}})
    values = resolve_hyperparams(config)
    assert values["actor_grad"] == "reinforce" and values["gamma"] == 0.95  # the preset, then the override
    baseline = resolve_hyperparams(RunConfig(algo="sac", hyperparams={"train_freq": [1, "episode"]}))
    assert baseline["train_freq"] == (1, "episode")  # JSON has no tuples: SB3's (1, "episode") comes back
