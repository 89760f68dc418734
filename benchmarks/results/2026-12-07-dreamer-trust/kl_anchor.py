"""#17 prototype: DreamerV3's REINFORCE actor held near a slow copy of itself (a KL trust region), run through the
runner's own protocol (`ca11 ablate`, in this process). The slow actor is an exponential moving average of the actor
(``slow <- (1 - KL_TAU) slow + KL_TAU actor`` after every update, as the slow critic); the actor's loss gains
``KL_COEF * KL(slow || actor)`` over the imagined states (closed form between the pre-squash Gaussians, weighted by
the imagined continuation as the rest of the loss). ACT_SLOW=1: the agent acts (in training and in evaluation)
with the slow actor, a weight average of the trained one (Nikishin et al., 2018). Usage (from the repository root):
    KL_COEF=1.0 KL_TAU=0.02 PYTHONPATH=. python benchmarks/results/2026-12-07-dreamer-trust/kl_anchor.py ABLATE_ARGS...
ABLATE_ARGS are those of `python -m ca11_agents.cli ablate` (e.g. --learner dreamer --variants full --env ENV
--hparams JSON --seeds 0, --steps 10000 --eval-every 500 --no-ray --device cpu --out OUT)."""
import copy, os, sys
import torch
from ca11_agents.dreamer import dreamer as D
from ca11_agents.dreamer.critic import update_slow
from ca11_agents.dreamer.imagination import imagine_sampled, imagined_returns
from benchmarks import ablation

KL_COEF, KL_TAU = float(os.environ["KL_COEF"]), float(os.environ.get("KL_TAU", "0.02"))
ACT_SLOW = os.environ.get("ACT_SLOW") == "1"
_setup, _train = D.DreamerAgent._setup_model, D.DreamerAgent.train


def _setup_model(self):
    _setup(self)
    self.slow_actor = copy.deepcopy(self.policy.actor).requires_grad_(False)
    if ACT_SLOW:  # not a registered submodule: the policy's state dict stays the library's
        self.policy.__dict__["acting_actor"] = self.slow_actor


@torch.no_grad()
def act(self, obs, state, prev_action, is_first, deterministic):
    state = self.filter(obs, state, prev_action, is_first, deterministic)
    return self.__dict__.get("acting_actor", self.actor).act(self.rssm.features(state), deterministic), state


def kl(slow, actor, states):
    """KL(slow || actor) per state, between the pre-squash diagonal Gaussians."""
    with torch.no_grad():
        m0, s0 = slow._params(states)
    m1, s1 = actor._params(states)
    return (torch.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5).sum(-1)


def _actor_step_reinforce(self, start):
    policy = self.policy
    feats, actions, pres = imagine_sampled(policy.rssm, policy.actor, start, self.imagination_horizon)
    with torch.no_grad():
        values = policy.critic(feats)
        returns, alive = imagined_returns(
            policy.rssm, feats, actions, values, self.gamma, self.return_lambda, continue_mode=True
        )
        scale = self._return_scale(returns)
        advantages = (returns - values[:, :-1]) / scale
        slow = policy.slow_critic(feats[:, :-1])
    states = feats[:, :-1]
    entropy = policy.actor.entropy(states)
    objective = policy.actor.log_prob(states, pres) * advantages + self.ent_coef * entropy
    objective = objective - KL_COEF * kl(self.slow_actor, policy.actor, states)
    actor_loss = -(alive * objective).mean()
    self.actor_optimizer.zero_grad(set_to_none=True)
    actor_loss.backward()
    return D.ActorStep(feats, returns, alive, actor_loss.detach(), entropy.detach(), scale, values, slow)


def train(self):
    terms = _train(self)
    update_slow(self.slow_actor, self.policy.actor, KL_TAU)
    return terms


D.DreamerAgent._setup_model, D.DreamerAgent._actor_step_reinforce, D.DreamerAgent.train = (
    _setup_model, _actor_step_reinforce, train
)
D.DreamerPolicy.act = act
sys.exit(ablation.main(sys.argv[1:]))
