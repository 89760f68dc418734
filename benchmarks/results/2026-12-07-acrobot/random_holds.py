import gymnasium as gym, numpy as np
env = gym.make("Acrobot-v1")
rng = np.random.default_rng(0)
for hold in (1, 2, 4, 8):
    lens = []
    for ep in range(40):
        obs, _ = env.reset(seed=ep); t = 0; done = False
        while not done:
            if t % hold == 0: a = rng.integers(3)
            obs, r, term, trunc, _ = env.step(a); t += 1; done = term or trunc
        lens.append(t)
    lens = np.array(lens)
    print(f"hold {hold}: success {np.mean(lens < 500):.2f}, mean len {lens.mean():.0f}")
