"""``python -m ca11_agents.cli``: the ``ca11`` command without the console script."""

import sys

from ca11_agents.cli import main

sys.exit(main())
