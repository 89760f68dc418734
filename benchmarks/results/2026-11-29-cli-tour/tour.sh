set -e
export SDL_VIDEODRIVER=dummy OMP_NUM_THREADS=1
C=/work/main/.venv/bin/ca11
s=$(date +%s.%N); $C train dreamer --env CA11/ContinuousPendulum-v0 --steps 3000 --out runs/pendulum --no-progress; e=$(date +%s.%N); echo "TRAIN_S $(echo "$e - $s" | bc)"
s=$(date +%s.%N); $C eval runs/pendulum --episodes 10 --json runs/pendulum/eval.json; e=$(date +%s.%N); echo "EVAL_S $(echo "$e - $s" | bc)"
s=$(date +%s.%N); $C render runs/pendulum --video runs/pendulum/agent.gif; e=$(date +%s.%N); echo "RENDER_S $(echo "$e - $s" | bc)"
s=$(date +%s.%N); $C dream runs/pendulum --video runs/pendulum/dream.gif --plot runs/pendulum/dream.png; e=$(date +%s.%N); echo "DREAM_S $(echo "$e - $s" | bc)"
python3 -c "import numpy as np; d=np.load('runs/pendulum/evaluations.npz'); print('EVALS', d['timesteps'].tolist(), d['results'].mean(1).round(1).tolist())"
