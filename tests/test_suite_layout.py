"""The test suite's own rules: every module of comipn_prep and comipn_model is imported directly by at least
one test file, and tests import nothing from tests/ (helpers are fixtures in conftest.py files; pytest runs
with --import-mode=importlib, so test files in different folders may share a basename).

tests/ mirrors the packages (tests/prep/nps/ for comipn_prep.nps, tests/model/training/ for
comipn_model.training, ...); project-level tests (docs, the demo, the repository itself) sit at the top.
tests/bench/ holds scripts run by hand, not tests: they are left out of both checks."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

PACKAGES = ("comipn_prep", "comipn_model")


def _test_files(tests: Path) -> list[Path]:
    return sorted(p for p in tests.rglob("test_*.py") if "bench" not in p.relative_to(tests).parts)


def _python_files(tests: Path) -> list[Path]:
    """Every .py file of the suite: test files and conftest.py files (not tests/bench/)."""
    return sorted(p for p in tests.rglob("*.py") if "bench" not in p.relative_to(tests).parts)


def _modules(repo_root: Path) -> list[str]:
    """Dotted names of every module of the packages (package __init__ and __main__ files left out)."""
    names = []
    for package in PACKAGES:
        for path in sorted((repo_root / package).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py") or "__pycache__" in path.parts:
                continue
            names.append(".".join(path.relative_to(repo_root).with_suffix("").parts))
    return names


def _imports(path: Path) -> list[tuple[int, str, list[str], int]]:
    """(line, module, imported names, level) of every import statement in the file, at any depth (inside
    functions too): ``import a.b`` gives ("a.b", [], 0), ``from a import b, c`` gives ("a", ["b", "c"], 0)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, [], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", [alias.name for alias in node.names], node.level))
    return found


def directly_imported(path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that the file imports by their own name: ``import x.y``, ``from x.y import
    name`` or ``from x import y`` (y a module). Importing a package does not count for its modules."""
    hits = set()
    for _, module, names, level in _imports(path):
        if level:
            continue
        if module in modules:
            hits.add(module)
        hits |= {f"{module}.{name}" for name in names} & modules
    return hits


def test_every_module_is_imported_directly_by_a_test(repo_root):
    modules = _modules(repo_root)
    assert "comipn_model.training.loop" in modules and "comipn_prep.nps.rules" in modules  # the walk works
    imported = set()
    for path in _test_files(repo_root / "tests"):
        imported |= directly_imported(path, set(modules))
    missing = [m for m in modules if m not in imported]
    assert not missing, ("no test file imports these modules directly (import the module, or a name from it, "
                         "in a test of its own behaviour):\n" + "\n".join(missing))


def _known_top_level_names() -> set[str]:
    """What an import in a test may name first: the standard library, installed distributions, our packages."""
    return set(sys.stdlib_module_names) | set(importlib.metadata.packages_distributions()) | set(PACKAGES)


def _suite_names(tests: Path) -> set[str]:
    """Top-level names a plain import of a file or folder of tests/ would use."""
    names = {"tests"}
    for path in tests.rglob("*"):
        if path.is_dir() or path.suffix == ".py":
            names.add(path.stem)
    return names - {"__pycache__"}


def plain_imports_of_the_suite(path: Path, suite_names: set[str], known: set[str]) -> list[str]:
    """Each import of ``path`` that names a file or folder of tests/, is relative, or resolves to neither the
    standard library, nor an installed distribution, nor comipn_prep / comipn_model."""
    problems = []
    for line, module, names, level in _imports(path):
        shown = f"{path.name}:{line}: " + (f"from {'.' * level}{module} import {', '.join(names)}" if names
                                            else f"import {module}")
        top = module.split(".")[0]
        if level:
            problems.append(f"{shown} (relative import)")
        elif top in suite_names:
            problems.append(f"{shown} (a file of tests/: make it a fixture in a conftest.py)")
        elif top not in known:
            problems.append(f"{shown} (neither the standard library, an installed distribution nor our packages)")
    return problems


def test_no_test_imports_a_file_of_the_suite(repo_root):
    tests = repo_root / "tests"
    suite_names = _suite_names(tests)
    known = _known_top_level_names()
    assert {"conftest", "test_suite_layout", "prep", "model"} <= suite_names and "torch" in known
    problems = []
    for path in _python_files(tests):
        problems += [f"{path.relative_to(tests).parent}/{p}" for p in plain_imports_of_the_suite(path, suite_names,
                                                                                                  known)]
    assert not problems, "imports that are not stdlib / third-party / comipn_*:\n" + "\n".join(problems)


def test_the_checks_see_what_they_look_for(tmp_path):
    """The two checks above catch each kind of import they look for (they would pass an empty suite too)."""
    sample = tmp_path / "test_sample.py"
    sample.write_text("import os\nimport comipn_model.saved\nimport comipn_model.saved.loader\n"
                      "from comipn_model.data import batching\n"
                      "from comipn_prep.nps.rules import trim\n"
                      "def test_x():\n    from conftest import REPO_ROOT\n    import test_other\n"
                      "    from .helpers import thing\n    import no_such_distribution_anywhere\n"
                      "    from comipn_model import version\n")
    modules = {"comipn_model.saved.loader", "comipn_model.data.batching", "comipn_prep.nps.rules",
               "comipn_model.version", "comipn_model.saved.export"}
    assert directly_imported(sample, modules) == modules - {"comipn_model.saved.export"}  # only its package
    problems = plain_imports_of_the_suite(sample, {"tests", "conftest", "test_other"}, _known_top_level_names())
    assert [p.split(": ", 1)[1].split(" (")[0] for p in problems] == [
        "from conftest import REPO_ROOT", "import test_other", "from .helpers import thing",
        "import no_such_distribution_anywhere"]
