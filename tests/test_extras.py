"""Every command imports with what its docs say it needs: the scripts in scripts/ and the modules of benchmarks/.

* With the dev extra (this test session's environment), every one of them imports.
* A command needs the core install plus the extras named in the first paragraph of its module docstring, the part
  its ``--help`` prints (``Needs the ``bench`` extra: ``pip install ".[bench]"``)``): in a fresh interpreter where
  every other installed distribution is hidden, it imports; and every import in its file, lazy ones included, comes
  from the core, those extras or the extras its docstring names further down (optional paths, such as
  ``record_video.py --algo recurrent_ppo``).
* setup.cfg's extras: ``dev`` holds every other extra; README.md's table names each of them; the Makefile installs
  the core for ``make demo`` and ``dev`` for ``make test``.
* The benchmark runner and the ablation name the missing extra before any run starts, not after the runs.

The distributions an extra brings are the closure of its requirements over the installed packages' metadata
(:func:`closure`), so a package that the core already pulls in (e.g. ``packaging``) counts as core.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.metadata as metadata
import importlib.util
import inspect
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py")])
EXTRA = re.compile(r"""pip install (?:-e )?["']?\.\[([\w,-]+)\]""")

_setup = configparser.ConfigParser()
_setup.read(ROOT / "setup.cfg")


def requirements(value: str) -> list[Requirement]:
    """The requirements of a setup.cfg list (one per line)."""
    return [Requirement(line) for line in value.strip().splitlines() if line.strip() and not line.startswith("#")]


CORE = requirements(_setup["options"]["install_requires"])
EXTRAS = {name: requirements(value) for name, value in _setup["options.extras_require"].items()}


def closure(reqs: Iterable[Requirement]) -> set[str]:
    """The canonical names of the installed distributions ``reqs`` bring, with their dependencies (markers and
    requested extras evaluated)."""
    names: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(reqs)
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing of it to hide or to allow
        names.add(key[0])
        for sub in map(Requirement, requires):
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in {"", *req.extras}):
                todo.append(sub)
    return names


def hidden_modules(extras: Iterable[str]) -> list[str]:
    """Top-level module names of the installed distributions that the core and ``extras`` do not bring."""
    allowed = closure([*CORE, *(req for extra in extras for req in EXTRAS[extra])]) | {"ca11"}
    return sorted(
        top for top, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(dist) in allowed for dist in dists)
    )  # fmt: skip


def docstring(command: str) -> str:
    return ast.get_docstring(ast.parse((ROOT / command).read_text())) or ""


def required_extras(command: str) -> set[str]:
    """The extras the first paragraph of ``command``'s docstring names (what it needs to run at all)."""
    return {name for group in EXTRA.findall(docstring(command).split("\n\n")[0]) for name in group.split(",")}


def named_extras(command: str) -> set[str]:
    """Every extra ``command``'s docstring names (needed, or for an optional path)."""
    return {name for group in EXTRA.findall(docstring(command)) for name in group.split(",")}


def imported_modules(command: str) -> set[str]:
    """Top-level names of every module ``command``'s file imports, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / command).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def import_command(command: str) -> object:
    """Import a script by path (scripts/ is not a package) or a benchmarks module by name. The fresh interpreters
    of :func:`import_hidden` run this function's source."""
    if command.startswith("benchmarks/"):
        return importlib.import_module(command[:-3].replace("/", ".").removesuffix(".__init__"))
    spec = importlib.util.spec_from_file_location("ca11_command_" + command[:-3].replace("/", "_"), ROOT / command)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  (dataclasses look their module up)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


#: A fresh interpreter: hides the modules of argv[1], imports the commands of argv[2], prints what failed as JSON.
_IMPORT_HIDDEN = """
import importlib, importlib.abc, importlib.util, json, sys
from pathlib import Path
ROOT = Path({root!r})
sys.path.insert(0, str(ROOT))
hidden = set(json.loads(sys.argv[1]))

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in this install)", name=name)
        return None

sys.meta_path.insert(0, Hide())
{import_command}
failures = {{}}
for command in json.loads(sys.argv[2]):
    try:
        import_command(command)
    except Exception as err:
        failures[command] = f"{{type(err).__name__}}: {{err}}"
print(json.dumps(failures))
"""


def import_hidden(extras: Iterable[str], commands: list[str]) -> dict[str, str]:
    """Import ``commands`` in a fresh interpreter that sees only the core and ``extras``; the failures by command."""
    code = _IMPORT_HIDDEN.format(root=str(ROOT), import_command=inspect.getsource(import_command))
    result = subprocess.run([sys.executable, "-c", code, json.dumps(hidden_modules(extras)), json.dumps(commands)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_imports_with_the_dev_extra(command: str) -> None:
    import_command(command)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_import_comes_from_the_core_or_an_extra_the_docstring_names(command: str) -> None:
    extras = named_extras(command)
    assert extras <= set(EXTRAS), f"{command} names extras setup.cfg lacks: {sorted(extras - set(EXTRAS))}"
    hidden = set(hidden_modules(extras))
    assert not imported_modules(command) & hidden, (
        f"{command} imports {sorted(imported_modules(command) & hidden)}, which neither the core nor the extras its "
        f"docstring names ({sorted(extras) or 'none'}) install"
    )


def test_every_command_imports_with_only_the_core_and_the_extras_its_help_names() -> None:
    groups: dict[frozenset[str], list[str]] = {}
    for command in COMMANDS:
        groups.setdefault(frozenset(required_extras(command)), []).append(command)
    assert frozenset() in groups and len(groups) >= 3  # the core, and commands that need extras
    failures = {}
    for extras, commands in groups.items():
        failures.update({f"{command} (extras: {sorted(extras) or 'none'})": error
                         for command, error in import_hidden(extras, commands).items()})  # fmt: skip
    assert not failures, failures


def test_hiding_finds_a_missing_extra() -> None:
    assert {"pandas", "ray", "optuna", "tianshou", "sb3_contrib", "pytest"} <= set(hidden_modules([]))
    assert "pandas" not in hidden_modules(["analysis"]) and "torch" not in hidden_modules([])
    assert {"optuna", "ray"} <= imported_modules("benchmarks/sweep.py")  # ray only inside a function
    failures = import_hidden([], ["scripts/probe_agent.py", "scripts/walkthrough.py"])
    assert list(failures) == ["scripts/probe_agent.py"] and "pandas" in failures["scripts/probe_agent.py"]


@pytest.mark.parametrize("command", [c for c in COMMANDS if required_extras(c)])
def test_help_names_the_extra(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = import_command(command)
    if hasattr(module, "build_parser"):
        text = module.build_parser().format_help()
    else:
        with pytest.raises(SystemExit):
            module.main(["--help"])
        text = capsys.readouterr().out
    for extra in required_extras(command):
        assert f".[{extra}]" in text, f"{command} --help does not name the {extra} extra"


def test_dev_holds_every_extra_and_the_readme_and_makefile_agree() -> None:
    dev = {canonicalize_name(req.name) for req in EXTRAS["dev"]}
    for name, reqs in EXTRAS.items():
        assert {canonicalize_name(req.name) for req in reqs} <= dev, f"dev lacks part of {name}"
    readme = (ROOT / "README.md").read_text()
    for name in EXTRAS:
        assert f"| `{name}` |" in readme, f"README.md's table of extras lacks {name}"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: \$\(VENV\)/\.installed-core$", makefile, re.M)
    assert re.search(r"^test: \$\(VENV\)/\.installed-dev$", makefile, re.M)
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_the_runner_and_the_ablation_name_a_missing_extra_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import run

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "pandas"
                        else real_find_spec(name, *args))  # fmt: skip
    assert run.missing_extras(use_ray=False, report=False) is None
    argv = ["--algos", "sb3_ppo", "--envs", "CA11/ContinuousPendulum-v0", "--no-ray", "--out", str(tmp_path)]
    assert run.main(argv) == 2
    assert 'pandas not installed: pip install ".[bench]"' in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    ablation = import_command("benchmarks/ablation.py")
    assert ablation.main(["--no-ray", "--out", str(tmp_path)]) == 2  # type: ignore[attr-defined]
    assert ".[bench]" in capsys.readouterr().err
