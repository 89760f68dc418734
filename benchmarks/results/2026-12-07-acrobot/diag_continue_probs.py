"""diag.py with the REINFORCE actor's imagined returns taken from the continue head's probabilities, not its mode.

    python diag_continue_probs.py SEED STEPS '{"explore_fraction": 1.0}'
"""
import json, sys
import numpy as np, torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from ca11_agents import DreamerAgent
import ca11_agents.dreamer.dreamer as _dreamer
_returns = _dreamer.imagined_returns
_dreamer.imagined_returns = lambda *a, continue_mode: _returns(*a, continue_mode=False)  # continue probabilities

seed, steps = int(sys.argv[1]), int(sys.argv[2])
hp = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
torch.set_num_threads(1)
env = make_vec_env("Acrobot-v1", n_envs=1, seed=seed)
eval_env = make_vec_env("Acrobot-v1", n_envs=1, seed=seed + 1000)

class CB(BaseCallback):
    def __init__(self):
        super().__init__(); self.lengths = []; self.next = 1000; self.acts = []
    def _on_step(self):
        for info in self.locals["infos"]:
            if "episode" in info:
                self.lengths.append((self.num_timesteps, info["episode"]["l"]))
        self.acts.append(int(np.asarray(self.locals["action"]).reshape(-1, 3)[0].argmax()))
        if self.num_timesteps >= self.next:
            self.next += 1000
            det, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=5, deterministic=True, return_episode_rewards=True)
            sto, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=5, deterministic=False, return_episode_rewards=True)
            recent = [l for t, l in self.lengths if t > self.num_timesteps - 1000]
            a = np.array(self.acts[-1000:]); hist = np.bincount(a[a >= 0], minlength=3) if (a >= 0).any() else None
            print(f"{self.num_timesteps}: det {np.mean(det):.1f} sto {np.mean(sto):.1f} train eps {recent} acts {hist}", flush=True)
        return True

model = DreamerAgent("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
cb = CB()
model.learn(steps, callback=cb)
print("all training episodes:", cb.lengths)
