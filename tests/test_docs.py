"""No doc points to a missing file: the relative links and the repository paths named in README.md,
benchmarks/README.md and the module docstrings of ca11_agents, ca11_gym, benchmarks and scripts exist (and those in
the full sources of scripts and benchmarks: their ``--help``), and so do the modules their ``python -m`` commands
name. README.md's "Supported spaces" table names the policy aliases each learner accepts.

What counts as a path (:func:`named_paths`): a Markdown link's target; a token that starts with one of the
repository's top-level folders (``benchmarks/results/...``, ``scripts/walkthrough.py``); any ``*.md`` path
(``shared/DESIGN.md``), where a bare name must exist somewhere in the repository (``summary.md`` is in every results
folder). Generated outputs and placeholders (``outputs/demo/``, ``OUT/summary.md``, ``runs/<algo>.csv``,
``benchmarks/results/YYYY-MM-DD-gpu``) are not checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The top-level folders a doc's path can start with.
TOP_LEVEL = ("ca11_agents", "ca11_gym", "benchmarks", "scripts", "tests", ".ci")
MARKDOWN_DOCS = ("README.md", "benchmarks/README.md")
SOURCE_PACKAGES = ("ca11_agents", "ca11_gym", "benchmarks", "scripts")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
TOKEN = re.compile(r"[\w.<>*/-]+")
PYTHON_M = re.compile(r"python -m ([\w.]+)")
#: An upper-case word between separators stands for a value: ``OUT/``, ``YYYY-MM-DD`` (not ``README.md``).
PLACEHOLDER = re.compile(r"(^|[/_-])[A-Z]{2,}([/_-]|$)")


def module_docstrings() -> dict[str, str]:
    """Every module docstring of :data:`SOURCE_PACKAGES`, by path relative to the repository."""
    docs = {}
    for package in SOURCE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text()))
            if doc:
                docs[str(path.relative_to(ROOT))] = doc
    return docs


def documents() -> dict[str, tuple[Path, str]]:
    """Every checked text by name: ``(the folder its relative links start from, the text)``."""
    docs = {name: ((ROOT / name).parent, (ROOT / name).read_text()) for name in MARKDOWN_DOCS}
    docs.update({name: ((ROOT / name).parent, doc) for name, doc in module_docstrings().items()})
    return docs


def named_paths(text: str, links: bool = True) -> set[str]:
    """The repository paths a text names (see the module docstring); links (unless ``links`` is false, for source
    code) are returned as written."""
    paths = {target for target in LINK.findall(text) if links and not re.match(r"[a-z]+:|#", target)}
    for token in TOKEN.findall(text):
        token = token.rstrip(".,:;")
        if any(char in token for char in "<>*") or "..." in token or PLACEHOLDER.search(token):
            continue  # a pattern (runs/<algo>__<env>.csv, *.png, OUT/summary.md), not a path
        if token.startswith(tuple(f"{top}/" for top in TOP_LEVEL)) or token.endswith(".md"):
            paths.add(token)
    return paths


def resolves(path: str, folder: Path) -> bool:
    """Whether ``path`` exists relative to ``folder`` or the repository's root; a bare ``*.md`` name anywhere."""
    path = path.split("#")[0]
    if (folder / path).exists() or (ROOT / path).exists():
        return True
    if "/" not in path and path.endswith(".md"):
        return any(ROOT.glob(f"benchmarks/**/{path}")) or any(ROOT.glob(f"*/{path}"))
    return False


DOCS = documents()


def test_the_checked_documents_name_paths() -> None:
    assert "benchmarks/README.md" in named_paths(DOCS["README.md"][1])
    assert "benchmarks/README.md" in named_paths(DOCS["benchmarks/run.py"][1])
    placeholders = "`python -m benchmarks.run` writes `OUT/runs/<algo>__<env>.csv`, OUT/summary.md"
    assert named_paths(placeholders + " and benchmarks/results/YYYY-MM-DD-gpu/") == set()
    assert named_paths("see shared/DESIGN.md and RUNNER.md") == {"shared/DESIGN.md", "RUNNER.md"}
    assert not resolves("benchmarks/RUNNER.md", ROOT) and not resolves("RUNNER.md", ROOT)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_path_a_doc_names_exists(name: str) -> None:
    folder, text = DOCS[name]
    missing = sorted(path for path in named_paths(text) if not resolves(path, folder))
    assert not missing, f"{name} names files that do not exist: {missing}"


COMMAND_SOURCES = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py")])


@pytest.mark.parametrize("name", COMMAND_SOURCES)
def test_every_path_a_command_prints_exists(name: str) -> None:
    """The scripts' and benchmarks' sources in full: their ``--help`` and messages point to files too."""
    path = ROOT / name
    missing = sorted(p for p in named_paths(path.read_text(), links=False) if not resolves(p, path.parent))
    assert not missing, f"{name} names files that do not exist: {missing}"


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_python_m_module_a_doc_names_exists(name: str) -> None:
    modules = set(PYTHON_M.findall(DOCS[name][1]))
    missing = sorted(
        module for module in modules
        if not any((ROOT / module.replace(".", "/")).with_suffix(suffix).exists() for suffix in (".py", ""))
        and not module.startswith(("pytest", "pip", "venv"))
    )  # fmt: skip
    assert not missing, f"{name} names modules that do not exist: {missing}"


def test_the_supported_spaces_table_names_each_learners_policies() -> None:
    """README.md's "Supported spaces": one row per learner, naming exactly the policy aliases it accepts."""
    import ca11_agents

    readme = DOCS["README.md"][1]
    section = readme[readme.index("### Supported spaces") :].split("\n### ")[0]
    rows = dict(re.findall(r"^\| `(\w+Agent)` \| ([^|]+) \|", section, flags=re.M))
    assert set(rows) == {"DreamerAgent", "RSSMAgent", "WorldModelAgent"}
    for learner, observations in rows.items():
        assert set(re.findall(r"\w+Policy", observations)) == set(getattr(ca11_agents, learner).policy_aliases)
    assert readme.count("### Supported spaces") == 1 and readme.index("### Supported spaces") < readme.index("```python")
