import gymnasium as gym, numpy as np
env = gym.make("Acrobot-v1")
rng = np.random.default_rng(0)
def run(eps, mu, cap, base, eps_n=30):
    n = np.arange(1, cap + 1); p = n.astype(float) ** -mu; p /= p.sum()
    lens = []
    for ep in range(eps_n):
        env.reset(seed=ep); t = 0; left = 0; done = False
        while not done:
            if left == 0 and rng.random() < eps:
                held = rng.integers(3); left = rng.choice(n, p=p)
            a = held if left > 0 else (base if base is not None else rng.integers(3))
            left = max(left - 1, 0)
            _, _, term, trunc, _ = env.step(a); t += 1; done = term or trunc
        lens.append(t)
    return np.mean(np.array(lens) < 500)
for base in (2, None):
    for eps, mu, cap in [(0.1, 2, 100), (0.3, 2, 100), (0.1, 1.5, 100), (0.3, 1.5, 100), (0.1, 1.0, 100), (0.05, 1.0, 100), (0.5, 2, 100)]:
        print(f"base {base} eps {eps} mu {mu} cap {cap}: success {run(eps, mu, cap, base):.2f}", flush=True)
