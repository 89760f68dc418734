"""Which part of the imagination prefers one action? Train, then force the first imagined action."""
import sys, json
import numpy as np, torch
from stable_baselines3.common.env_util import make_vec_env
from ca11_agents import DreamerAgent
from ca11_agents.dreamer.imagination import imagined_returns
from ca11_agents.world_models.rssm import stack_states

seed, steps = int(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")]
hp = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
torch.set_num_threads(1)
env = make_vec_env("Acrobot-v1", n_envs=1, seed=seed)
model = DreamerAgent("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
done = 0
for total in steps:
    model.learn(total - done, reset_num_timesteps=False); done = total
    pol = model.policy; rssm = pol.rssm
    with torch.no_grad():
        torch.manual_seed(0)
        batch = model.replay_buffer.sample(16, model.seq_len, model.device, model.mc_max_age)
        _, _, post = rssm.loss_terms(batch)
        start = post.flatten()
        f0 = rssm.features(start)
        probs = pol.actor._probs(f0)[0].mean(0)
        v0 = pol.critic(f0)
        print(f"== {total} steps: actor probs {probs.numpy().round(3)}, v(start) mean {v0.mean():.2f} sd {v0.std():.2f}, "
              f"return range {float(model.return_norm.range):.3f}")
        for a in range(3):
            act = torch.zeros(f0.shape[0], 3); act[:, a] = 1
            s1 = rssm.img_step(start, act)
            def sample(f):
                return pol.actor.sample(f)[0]
            states, acts = rssm.rollout_policy(s1, sample, model.imagination_horizon - 1)
            feats = torch.cat([f0[:, None], rssm.features(states)], 1)
            actions = torch.cat([act[:, None], acts], 1)
            values = pol.critic(feats)
            R, alive = imagined_returns(rssm, feats, actions, values, model.gamma, model.return_lambda, True)
            r0 = rssm.reward(f0, act); c0 = rssm.cont(f0, act)
            adv = (R[:, 0] - v0)
            print(f"  a={a}: r(s,a) {r0.mean():.4f}±{r0.std():.4f}  cont {c0.mean():.4f} min {c0.min():.3f}  "
                  f"v(s1) {values[:,1].mean():.3f}  R0-v {adv.mean():.4f}±{adv.std():.4f}  all-rewards mean {rssm.reward(feats[:, :-1], actions).mean():.4f}")
