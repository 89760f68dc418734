"""#17 prototype: replay that shows the learner its recent failures. A share ``FAIL_FRAC`` of every sampled batch's
windows are drawn to contain one of the ``FAIL_RECENT`` most recent terminating steps (per environment, at a uniform
position in the window); the rest are drawn as the library draws them. Once the cart-pole is balanced for whole
episodes, the replay's failures are old and rare, so the world model's continue head, the Monte-Carlo returns and
the critic see the track's end less and less; this keeps the current policy's failures in every batch.
Runs the runner's protocol (`ca11 ablate`) in this process. Usage (from the repository root):
    FAIL_FRAC=0.25 FAIL_RECENT=16 PYTHONPATH=. python benchmarks/results/2026-12-07-dreamer-failures/failure_replay.py \
        ABLATE_ARGS...
ABLATE_ARGS are those of `python -m ca11_agents.cli ablate` (e.g. --learner dreamer --variants full --env ENV
--hparams JSON --seeds 0, --steps 10000 --eval-every 500 --no-ray --device cpu --out OUT)."""
import os, sys
import numpy as np
import torch
from ca11_agents.common import replay as R
from benchmarks import ablation

FAIL_FRAC, FAIL_RECENT = float(os.environ["FAIL_FRAC"]), int(os.environ.get("FAIL_RECENT", "16"))
_sample = R.SequenceReplayBuffer.sample


def sample(self, batch_size, seq_len, device="cpu", returns_max_age=None):
    batch = _sample(self, batch_size, seq_len, device, returns_max_age)
    n_fail = int(round(FAIL_FRAC * batch_size))
    oldest = (self.pos - self.count) % self.size_per_env
    # Offsets (from the oldest stored step) of terminating steps a window of seq_len can hold, per environment.
    offsets = (np.arange(self.count) + oldest) % self.size_per_env
    candidates = [
        np.flatnonzero(self.data["terminated"][env, offsets] > 0)[-FAIL_RECENT:] for env in range(self.n_envs)
    ]
    pool = [(env, o) for env, c in enumerate(candidates) for o in c]
    if n_fail == 0 or not pool:
        return batch
    pick = self.rng.integers(0, len(pool), size=n_fail)
    env = np.array([pool[i][0] for i in pick])
    end = np.array([pool[i][1] for i in pick])
    start = np.clip(end - self.rng.integers(0, seq_len, size=n_fail), 0, self.count - seq_len)
    steps = (oldest + start[:, None] + np.arange(seq_len)) % self.size_per_env
    fields = {k: v[env[:, None], steps] for k, v in self.data.items()}
    if returns_max_age is not None:
        age = (self.pos - 1 - steps) % self.size_per_env
        fields["returns"] = np.where(age < returns_max_age, fields["returns"], np.float32(np.nan))
    extra = R.join_observation({k: torch.as_tensor(v, device=device) for k, v in fields.items()})

    def replace(old, new):
        if isinstance(old, dict):
            return {k: replace(old[k], new[k]) for k in old}
        old = old.clone()
        old[:n_fail] = new
        return old

    return {k: replace(batch[k], extra[k]) for k in batch}


R.SequenceReplayBuffer.sample = sample
sys.exit(ablation.main(sys.argv[1:]))
