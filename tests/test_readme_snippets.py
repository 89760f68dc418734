"""README.md's Python blocks run as pasted, each on its own, without an exception or a warning.

Only budgets change (:func:`with_tiny_budgets`: env steps, evaluation episodes and their frequency, the component
example's gradient steps), so the test takes seconds, not the minutes the README's figures need. ``Agent(...).learn(N)``
becomes ``learn(learning_starts + EXTRA_STEPS)`` with the learner's default ``learning_starts``, so a few updates
run (and ``learn`` has no reason to warn). Relative output paths land in a temporary working directory.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ca11_agents

README = Path(__file__).resolve().parents[1] / "README.md"
#: Env steps after ``learning_starts`` in a rewritten ``learn(N)``: a few rounds of updates.
EXTRA_STEPS = 20
#: ``learn(N)`` not called on a named learner (``agent.learn(N)``) gets this many steps.
FALLBACK_STEPS = 600
#: ``(pattern, replacement)``: the other budgets of the README's blocks.
BUDGETS: tuple[tuple[str, str], ...] = (
    (r"n_eval_episodes=\d+", "n_eval_episodes=1"),
    (r"eval_freq=[\d_]+", "eval_freq=250"),
    (r"for (\w+) in range\([\d_]+\)", r"for \1 in range(50)"),
    (r'"(vae_steps|train_steps)": [\d_]+', r'"\1": 20'),  # run_world_model_experiment's config
    (r'"data_collection_steps": [\d_]+', '"data_collection_steps": 400'),
)
#: Put before a block: every warning a user would see becomes an error. Libraries' own filters, installed when the
#: block imports them, go in front of these (SB3 silences tqdm's "rich is experimental" that way), as for a user.
#: Deprecation warnings fail when they come from this project or the block; third-party ones are their business.
STRICT_WARNINGS = """import warnings
warnings.simplefilter("error")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("error", category=DeprecationWarning, module=r"(ca11_|__main__)")
"""
LEARN = re.compile(r"(?:(?P<learner>\w+Agent)\(.*?\))?\.learn\(\s*[\d_]+")


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def with_tiny_budgets(code: str) -> str:
    """``code`` with the budgets of ``learn`` calls cut (see the module docstring) and :data:`BUDGETS` applied."""

    def tiny_learn(match: re.Match[str]) -> str:
        steps = FALLBACK_STEPS
        if match["learner"]:  # a ca11 learner: an AttributeError here names a README learner that does not exist
            learner = getattr(ca11_agents, match["learner"])
            steps = inspect.signature(learner).parameters["learning_starts"].default + EXTRA_STEPS
        return re.sub(r"[\d_]+$", str(steps), match[0])

    code = LEARN.sub(tiny_learn, code)
    for pattern, replacement in BUDGETS:
        code = re.sub(pattern, replacement, code)
    return code


BLOCKS = python_blocks(README.read_text())


def test_the_readme_has_blocks_and_every_budget_is_rewritten() -> None:
    assert len(BLOCKS) >= 4
    for block in BLOCKS:
        tiny = with_tiny_budgets(block)
        assert all(int(n.replace("_", "")) <= FALLBACK_STEPS for n in re.findall(r"\.learn\(\s*([\d_]+)", tiny))
        assert not re.search(r"n_eval_episodes=(?!1\b)\d", tiny)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs_as_pasted_without_warnings(index: int, tmp_path: Path) -> None:
    """Each block in a fresh interpreter, as a user's script: imports, library warning filters and all."""
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(STRICT_WARNINGS + with_tiny_budgets(BLOCKS[index]))
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, f"README block {index} failed:\n{result.stderr[-4000:]}"
    assert "Warning" not in result.stderr, result.stderr[-4000:]
