"""diag.py with the REINFORCE actor's imagined returns taken from the continue head's probabilities, not its mode.

    python diag_continue_probs.py SEED STEPS '{"explore_fraction": 1.0}'
"""
import os
import runpy

import ca11_agents.dreamer.dreamer as dreamer

_returns = dreamer.imagined_returns
dreamer.imagined_returns = lambda *args, continue_mode: _returns(*args, continue_mode=False)
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "diag.py"), run_name="__main__")
