"""Named DreamerAgent configurations, measured in benchmarks/README.md."""

from __future__ import annotations

from typing import Any

#: Named configurations; ``DreamerAgent("MlpPolicy", env, **DREAMER_PRESETS["gpu"])``.
DREAMER_PRESETS: dict[str, dict[str, Any]] = {
    # The defaults: small networks that learn the CA11 tasks quickly on a laptop CPU.
    "cpu": {},
    # DreamerV3's actor-critic on the same networks: REINFORCE actor, critic bootstrapping itself, replay value
    # loss (and no Monte-Carlo value loss), gamma 0.997. Cheaper updates; slower than the default on the pendulum
    # (measured in benchmarks/README.md).
    "v3": {"actor_grad": "reinforce", "gamma": 0.997, "replay_value_coef": 0.3, "mc_value_coef": 0.0},
    # Larger networks and batches for a GPU, where width is nearly free and the sequential steps dominate.
    "gpu": {
        "batch_size": 32,
        "seq_len": 64,
        "policy_kwargs": {
            "hidden_dim": 512,
            "state_dim": 512,
            "classes": 16,
            "units": 512,
            "actor_hidden_dims": [512, 512],
            "critic_hidden_dims": [512, 512],
            "cnn_depth": 32,
        },
    },
}
