"""Ablation study of a ca11 learner: which ingredients buy sample efficiency on the CA11 tasks.
Needs the ``bench`` extra: ``pip install ".[bench]"`` (Ray runs the variants in parallel, pandas writes the report).

``--learner dreamer`` (default) removes DreamerV3's ingredients one at a time (:data:`VARIANTS`);
``--learner world_model_agent`` or ``rssm_agent`` changes one ingredient of a planner (:data:`PLANNER_VARIANTS`: the
ensemble, stochastic members, CEM against MPPI, the replay ratio, the horizon). Every variant is trained on the same
env, seeds and budget by the benchmark runner (:mod:`benchmarks.run`), so the outputs, the evaluation protocol and
resuming are the runner's::

    ca11 ablate --env CA11/ContinuousPendulum-v0 --variants all --seeds 3 --steps 5000 \\
        --eval-every 250 --out outputs/ablation-pendulum

Writes into ``--out``: ``results.csv``, ``runs/`` (one curve and marker per run), ``summary.md`` (final return with
bootstrap intervals, env steps and wall-clock to the threshold per variant, ratios against ``dreamer-full``, and a
table of what each variant removes and why DreamerV3 has it) and ``curves.png``. Run the same command again to
resume: finished runs are kept, unfinished ones restart. Variants are registered under the names ``dreamer-<name>``
(``wm-<name>``, ``rssm-<name>`` for the planners).

References: DreamerV3 = Hafner et al., "Mastering Diverse Domains through World Models" (arXiv:2301.04104);
DreamerV2 = Hafner et al., "Mastering Atari with Discrete World Models" (ICLR 2021).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import HelpFormatter, run
from benchmarks.algos import get_algo, merge_hyperparams, register_variant
from benchmarks.report import atomic_write_text, finished_runs, write_report
from ca11_agents import DREAMER_PRESETS


@dataclass(frozen=True)
class Variant:
    """One arm of the ablation: the full agent with one ingredient removed."""

    name: str
    """Command-line name; the runner's algorithm name is ``dreamer-<name>``."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """DreamerAgent constructor arguments; ``policy_kwargs`` entries are merged into the benchmark's, not replacing
    them (:func:`benchmarks.algos.merge_hyperparams`)."""
    removes: str = ""
    """What the variant takes away."""
    motivation: str = ""
    """Where the ingredient comes from and what it is meant to fix."""
    learner: str = "dreamer"
    """The benchmark registry's name of the learner the variant changes."""

    @property
    def algo(self) -> str:
        """The variant's name in results.csv and the run files."""
        return f"{PREFIXES[self.learner]}-{self.name}"


#: The prefix of each learner's variant names.
PREFIXES = {"dreamer": "dreamer", "world_model_agent": "wm", "rssm_agent": "rssm"}


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("full", {}, "nothing (the reference)", "DreamerV3 as implemented by DreamerAgent"),
        Variant(
            "no_categorical",
            {"policy_kwargs": {"latent": "gaussian"}},
            "categorical latents: the RSSM's stochastic state is a diagonal Gaussian instead",
            "DreamerV2, 'World model learning' and its ablations (categorical latents beat Gaussian ones on most "
            "Atari games); kept by DreamerV3, 'World model learning'",
        ),
        Variant(
            "no_symlog",
            {"policy_kwargs": {"symlog_obs": False}},
            "symlog observations: the encoder reads and the decoder reconstructs raw observations",
            "DreamerV3, 'Robust predictions': symlog squashes large inputs and targets so one set of "
            "hyperparameters fits observations of any scale",
        ),
        Variant(
            "no_unimix",
            {"policy_kwargs": {"unimix": 0.0}},
            "the 1 % uniform mixture of the categorical latents",
            "DreamerV3, 'World model learning': the mixture keeps latent probabilities away from 0, so the KL "
            "terms cannot spike",
        ),
        Variant(
            "no_free_bits",
            {"policy_kwargs": {"free_bits": 0.0}},
            "free bits: the KL losses are no longer clipped below 1 nat",
            "DreamerV3, 'World model learning': clipping the KL below 1 nat stops the model from spending "
            "capacity on squeezing an already small KL, and focuses it on prediction",
        ),
        Variant(
            "no_return_norm",
            {"normalize_returns": False},
            "return normalisation: the actor maximises raw lambda-returns (as Dreamer v1)",
            "DreamerV3, 'Actor learning': dividing returns by max(1, EMA of their 5th-95th percentile range) "
            "makes one entropy scale work for dense and sparse rewards",
        ),
        Variant(
            "no_slow_critic",
            {"critic_tau": 1.0},
            "the slow critic: returns bootstrap from, and the critic is regularised towards, the latest critic",
            "DreamerV2/V3, 'Critic learning': an exponential moving average of the critic stabilises the "
            "regression on its own bootstrapped targets",
        ),
        Variant(
            "no_mc_value",
            {"mc_value_coef": 0.0},
            "the Monte-Carlo value loss: the critic no longer regresses the returns of finished real episodes",
            "This project (benchmarks/README.md, 'The cart-pole'): imagined returns look imagination_horizon steps "
            "ahead, real episode returns see where a slow drift ends; without them the cart-pole is not solved",
        ),
        Variant(
            "v3_actor_critic",
            dict(DREAMER_PRESETS["v3"]),
            "Dreamer v1's actor-critic, replaced by DreamerV3's (the 'v3' preset): REINFORCE on normalised "
            "advantages bootstrapped from the critic, imagined episodes ended by the continue head's mode, the "
            "replay value loss instead of the Monte-Carlo one, gamma 0.997",
            "DreamerV3 (2024), 'Actor learning' and 'Critic learning': one actor loss for every action space. "
            "Measured here: no graph through the model makes updates cheaper and the cart-pole steadier, but the "
            "pendulum is solved later than with the dynamics gradient",
        ),
        # The advanced world models (issue #15): options of the same RSSM, measured against the default.
        Variant(
            "transformer",
            {"policy_kwargs": {"rssm_kwargs": {"core": "transformer"}}},
            "the GRU core: a causal transformer over the last 16 steps instead (KV-cached while acting)",
            "TransDreamer, STORM, TWM: attention over the latent history instead of one recurrent vector",
        ),
        Variant(
            "contrastive",
            {"policy_kwargs": {"rssm_kwargs": {"representation": "contrastive"}}},
            "the reconstruction decoder: InfoNCE between the predicted latent h_t and the embedding of o_t instead "
            "(a probe decoder, trained on detached latents, still draws dreams)",
            "CPC (van den Oord et al., 2018) and the contrastive world models: predict in latent space, not pixels",
        ),
        Variant(
            "redundancy",
            {"policy_kwargs": {"rssm_kwargs": {"representation": "redundancy"}}},
            "the reconstruction decoder: Barlow Twins' redundancy reduction between the latent and the embedding "
            "instead (a probe decoder, trained on detached latents, still draws dreams)",
            "R2-Dreamer (ICLR 2026): decoder-free, about 1.6x faster than its DreamerV3 at equal returns",
        ),
    )
}


_PETS = "Chua et al., 2018, 'Deep RL in a Handful of Trials using Probabilistic Dynamics Models'"
_TDMPC = "Hansen et al., 2022 (TD-MPC)"
PLANNER_VARIANTS: dict[str, dict[str, Variant]] = {
    "world_model_agent": {
        v.name: v
        for v in (
            Variant("full", {}, "nothing (the reference)", "WorldModelAgent's defaults"),
            Variant(
                "no_ensemble", {"policy_kwargs": {"ensemble_size": 1}}, "the ensemble: one dynamics model",
                f"{_PETS}: ensembles capture what the data does not pin down, so the planner cannot exploit one "
                "model's errors",
            ),
            Variant(
                "deterministic", {"policy_kwargs": {"stochastic": False}},
                "probabilistic members: each member predicts a point, trained by squared error",
                f"{_PETS}: Gaussian members ('PE') model the noise of the transitions, deterministic ones ('DE') do "
                "not",
            ),
            Variant("mppi", {"planner": "mppi"}, "CEM: the plan is refit to all candidates by MPPI's weights",
                    "Williams et al., 2017 (MPPI); TD-MPC2 refits by score-weighted averages"),
            Variant(
                "one_update", {"gradient_steps": 1}, "two of the three world-model updates per env step",
                "This project (benchmarks/README.md): the replay ratio that balanced the cart-pole after 500 steps",
            ),
            Variant(
                "no_terminal_value", {"terminal_value": 0.0},
                "the learned value: candidates are scored by their summed rewards alone",
                f"{_PETS} plans on rewards alone; {_TDMPC} adds a value beyond the horizon",
            ),
            Variant(
                "last_value_only", {"plan_lambda": 1.0},
                "the values along the plan: the rewards and the last imagined state's value alone",
                f"{_TDMPC} scores the last state's value; this project the lambda-return (benchmarks/README.md, "
                "'the planners' score along the plan')",
            ),
            Variant(
                "no_mc_value", {"mc_value_coef": 0.0},
                "the critic's Monte-Carlo loss: TD(lambda) targets of the replayed windows alone",
                "This project: DreamerAgent's Monte-Carlo value loss (benchmarks/README.md, 'The cart-pole')",
            ),
        )
    },
    "rssm_agent": {
        v.name: v
        for v in (
            Variant("full", {}, "nothing (the reference)", "RSSMAgent's defaults"),
            Variant("mppi", {"planner": "mppi"}, "CEM: the plan is refit by MPPI's weights",
                    "Williams et al., 2017"),
            Variant(
                "gaussian", {"policy_kwargs": {"latent": "gaussian"}},
                "categorical latents: a diagonal Gaussian stochastic state, as PlaNet's",
                "Hafner et al., 2019 (PlaNet) against DreamerV2's categorical latents",
            ),
            Variant("short_horizon", {"horizon": 6}, "half the planning horizon (6 steps, half the cost of acting)",
                    "PlaNet plans 12 steps ahead"),
            Variant(
                "no_terminal_value", {"terminal_value": 0.0},
                "the learned terminal value: candidates are scored by their summed rewards alone",
                f"Hafner et al., 2019 (PlaNet) plans on rewards alone; {_TDMPC} adds a value beyond the horizon",
            ),
            Variant("long_horizon", {"horizon": 24}, "nothing: twice the planning horizon (twice the cost of acting)",
                    "This project (benchmarks/README.md): the lever measured on the cart-pole's drift"),
            Variant(
                "no_exploration_noise", {"planner_kwargs": {"exploration_std": 0.0}},
                "the training actions' noise (the refined plan's spread): it trains with the evaluation's actions",
                "TD-MPC samples from the refined plan; PlaNet adds N(0, 0.3) to its mean",
            ),
            Variant(
                "mc_value", {"mc_value_coef": 1.0},
                "nothing: the critic also regresses the Monte-Carlo returns of finished episodes",
                "This project: DreamerAgent's Monte-Carlo value loss (benchmarks/README.md, 'The cart-pole')",
            ),
        )
    },
}


# Each planner variant changes the learner it is listed under.
PLANNER_VARIANTS = {
    learner: {name: dataclasses.replace(v, learner=learner) for name, v in variants.items()}
    for learner, variants in PLANNER_VARIANTS.items()
}


def variants_of(learner: str) -> dict[str, Variant]:
    """The variants of ``learner`` (``dreamer``, ``world_model_agent`` or ``rssm_agent``) by name."""
    if learner == "dreamer":
        return VARIANTS
    if learner not in PLANNER_VARIANTS:
        raise ValueError(f"unknown learner {learner!r}; valid: dreamer, {', '.join(PLANNER_VARIANTS)}")
    return PLANNER_VARIANTS[learner]


def parse_variants(text: str, learner: str = "dreamer") -> list[Variant]:
    """``"all"`` or comma-separated names of the learner's variants; unknown names raise a ``ValueError`` listing
    them."""
    known = variants_of(learner)
    names = list(known) if text.strip() == "all" else run.parse_names(text)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"unknown variant(s) {unknown}; valid: all, {', '.join(known)}")
    return [known[name] for name in dict.fromkeys(names)]  # dict: drop repeats, keep the order


def parse_hparams(text: str | None) -> dict[str, Any]:
    """``--hparams``: a JSON object of DreamerAgent arguments applied to every variant (or trial)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--hparams must be a JSON object, got {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"--hparams must be a JSON object such as '{{\"train_freq\": 4}}', got {text!r}")
    return value


def register(variants: Sequence[Variant], hparams: Mapping[str, Any]) -> None:
    """Register each variant with the runner as its learner + ``hparams`` + its own overrides (the removal wins)."""
    for variant in variants:
        register_variant(variant.algo, variant.learner, merge_hyperparams(hparams, variant.overrides))


def warn_stale_runs(out_dir: Path, variants: Sequence[Variant], env_ids: Sequence[str]) -> None:
    """Note finished runs whose hyperparameters differ from this invocation's (they are kept, as the runner does)."""
    algos = {v.algo for v in variants}
    for stem, marker in finished_runs(out_dir / "runs").items():
        if marker["algo"] not in algos or marker["env_id"] not in env_ids:
            continue
        wanted = {k: repr(v) for k, v in get_algo(marker["algo"]).hyperparams_for(marker["env_id"]).values.items()}
        if marker.get("hyperparams") != wanted:
            print(f"note: keeping finished {stem}, trained with other hyperparameters ({marker.get('hyperparams')}); "
                  f"delete runs/{stem}.* to redo it")


def variants_section(variants: Sequence[Variant]) -> str:
    """Markdown table appended to summary.md: what each variant removes and why DreamerV3 has it."""
    lines = ["## Variants", "", "| variant | removes | overrides | motivation |", "|---|---|---|---|"]
    for v in variants:
        lines.append(f"| {v.algo} | {v.removes} | `{json.dumps(dict(v.overrides))}` | {v.motivation} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--env", default="CA11/ContinuousPendulum-v0", help="env id (comma-separated for several)")
    parser.add_argument("--learner", default="dreamer", choices=("dreamer", *PLANNER_VARIANTS),
                        help="the learner whose ingredients are changed")  # fmt: skip
    parser.add_argument("--variants", default="all",
                        help=f"'all' or a comma-separated subset of the learner's: {', '.join(VARIANTS)} (dreamer); "
                        + "; ".join(f"{', '.join(v)} ({k})" for k, v in PLANNER_VARIANTS.items()))  # fmt: skip
    parser.add_argument("--seeds", default="3", help="a count N (seeds 0..N-1) or a list '0,1,2'")
    parser.add_argument("--steps", type=int, default=5000, help="env steps per run")
    parser.add_argument("--eval-every", type=int, default=250,
                        help="env steps between evaluations (the resolution of steps-to-threshold)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation")
    parser.add_argument("--hparams", help="JSON object of the learner's arguments applied to every variant, e.g. "
                        "'{\"train_freq\": 4, \"policy_kwargs\": {\"units\": 64}}'")  # fmt: skip
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--out", required=True, type=Path, help="output directory (reuse it to resume)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="Ray CPUs (and torch threads) per run")
    parser.add_argument("--no-ray", action="store_true", help="run sequentially in this process")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ablation; returns the runner's exit status (0 all finished, 1 some failed, 2 bad arguments)."""
    args = build_parser().parse_args(argv)
    missing = run.missing_extras(not args.no_ray, report=True)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    try:
        known = variants_of(args.learner)
        variants = parse_variants(args.variants, args.learner)
        # All of them, so that the report also knows variants finished by earlier invocations in the same --out.
        register(list(known.values()), parse_hparams(args.hparams))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    env_ids = run.parse_names(args.env)
    if (args.out / "runs").is_dir():
        warn_stale_runs(args.out, variants, env_ids)
    runner_args = ["--algos", ",".join(v.algo for v in variants), "--envs", args.env, "--seeds", args.seeds,
                   "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                   "--eval-episodes", str(args.eval_episodes), "--device", args.device, "--out", str(args.out),
                   "--cpus-per-run", str(args.cpus_per_run), "--no-report"]  # fmt: skip
    if args.num_cpus is not None:
        runner_args += ["--num-cpus", str(args.num_cpus)]
    if args.no_ray:
        runner_args.append("--no-ray")
    status = run.main(runner_args)
    if status == 2 or not (args.out / "results.csv").exists():
        return status
    # Ratios against the full agent: < 1 would mean removing the ingredient made learning faster.
    paths = write_report(args.out, baseline=known["full"].algo)
    summary, finished = paths[0], {marker["algo"] for marker in finished_runs(args.out / "runs").values()}
    text = summary.read_text().replace("# Benchmark summary", f"# Ablation summary ({args.learner})", 1)
    reported = [v for v in known.values() if v.algo in finished]
    atomic_write_text(summary, text.rstrip("\n") + "\n\n" + variants_section(reported))
    for path in paths:
        print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
