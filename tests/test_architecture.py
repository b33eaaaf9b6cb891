"""The import graph stays clean: no circle, no arrow up or sideways between the floors of ``comipn_model``,
no re-exports, and docs/architecture.md shows the graph the source has now.

The graph is built by docs/gen_architecture.py (``ast`` over the files, nothing imported), the same
function that draws the page, so the page and these checks read one graph.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import itertools
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("comipn_prep", "comipn_model")
# The public faces: they import the names they list in __all__ for their users.
ROOTS = {Path("comipn_prep/__init__.py"), Path("comipn_model/__init__.py")}


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_architecture", REPO / "docs" / "gen_architecture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def circles_message(graph) -> str:
    """Each circle, and the import that makes each of its arrows."""
    first = {}
    for imp in graph.imports:
        first.setdefault((imp.source, imp.target), imp)
    lines = []
    for cycle in gen.find_cycles(graph):
        lines.append(f"import circle in {graph.package}: " + " -> ".join(cycle))
        lines += [f"  {first[a, b].where}: {first[a, b].statement}" for a, b in itertools.pairwise(cycle)]
    return "\n".join(lines)


# ---- the graph ------------------------------------------------------------------------------------

@pytest.mark.parametrize("package", PACKAGES)
def test_import_graph_has_no_circle(package):
    graph = gen.import_graph(package)
    assert len(graph.modules) > 10 and len(graph.imports) > 50  # the graph was read, not empty
    cycles = gen.find_cycles(graph)
    assert not cycles, circles_message(graph)


def test_no_import_points_up_or_sideways():
    """Every import of comipn_model goes to its own subpackage or a lower floor; none between training
    and inference; none to the package root; every unit is on a floor."""
    problems = gen.floor_problems(gen.import_graph("comipn_model"))
    assert not problems, "imports against the floors (docs/gen_architecture.py FLOORS):\n" + "\n".join(problems)


def test_comipn_prep_imports_nothing_of_comipn_model():
    back = gen.cross_imports(gen.import_graph("comipn_prep"), gen.import_graph("comipn_model"))
    assert not back, "comipn_prep imports comipn_model:\n" + "\n".join(f"{i.where}: {i.statement}" for i in back)


def test_every_module_has_a_role():
    """The tables' role column is each module's first docstring sentence: none may be empty."""
    missing = [m.path.as_posix() for p in PACKAGES for m in gen.import_graph(p).modules.values()
               if not gen.first_sentence(m.docstring)]
    assert not missing, f"modules without a docstring saying what they are for: {missing}"


# ---- the page -------------------------------------------------------------------------------------

def test_architecture_md_is_generated():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    generated = gen.render_page(page)
    diff = "".join(list(difflib.unified_diff(page.splitlines(True), generated.splitlines(True),
                                             "docs/architecture.md", "generated"))[:60])
    if page != generated:  # pytest.fail: the diff above says it better than pytest's own string diff
        pytest.fail(f"docs/architecture.md is out of date: run python docs/gen_architecture.py\n{diff}")


def test_generator_check_mode(tmp_path, capsys):
    page = tmp_path / "architecture.md"
    shutil.copy(REPO / "docs" / "architecture.md", page)
    assert gen.main(["--output", str(page)]) == 0  # regenerated here: this test does not need the real page fresh
    assert gen.main(["--check", "--output", str(page)]) == 0
    page.write_text(page.read_text().replace("| `network.crf` |", "| `network.crf_old` |"))
    assert gen.main(["--check", "--output", str(page)]) == 1
    err = capsys.readouterr().err
    assert "-| `network.crf_old` |" in err and "run python docs/gen_architecture.py" in err
    assert gen.main(["--output", str(page)]) == 0
    assert gen.main(["--check", "--output", str(page)]) == 0
    page.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no generated part"):
        gen.main(["--output", str(page)])


# ---- no re-exports --------------------------------------------------------------------------------

def module_level_imports(tree: ast.Module):
    """Imports outside any function or class body (those bind module attributes others could import)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def bound_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.module == "__future__":
        return []
    return [alias.asname or alias.name.split(".")[0] for alias in node.names]


def dunder_all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            return [e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)]
    return []


def reexport_problems(path: str, source: str, is_root: bool) -> list[str]:
    """Names imported at module level and not used in the module (a root may list them in __all__
    instead), and a non-root __all__ that lists imported names."""
    tree = ast.parse(source)
    # read, not assigned (an import's own fallback, `x = None`, is no use); attribute chains start at a Name
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}
    listed = dunder_all(tree)
    problems = []
    imported = set()
    for node in sorted(module_level_imports(tree), key=lambda n: n.lineno):
        for name in bound_names(node):
            imported.add(name)
            if name not in used and not (is_root and name in listed):
                problems.append(f"{path}:{node.lineno}: `{name}` is imported and not used here "
                                f"(a re-export? callers import it from the module that defines it)")
    if not is_root:
        problems += [f"{path}: __all__ lists `{name}`, which it imports (a re-export)"
                     for name in listed if name in imported]
    return problems


_NOQA_F401 = re.compile(r"#\s*noqa(?!:)|#\s*noqa:[^#]*\bF401\b", re.IGNORECASE)


def noqa_problems(path: str, source: str) -> list[str]:
    """``# noqa: F401`` (or a bare ``# noqa``, which silences F401 too) is allowed only on an import
    inside a function body: the check that an optional dependency is installed
    (``import tensorboard  # noqa: F401``), which binds nothing anyone else could import."""
    tree = ast.parse(source)
    inside_functions = set()
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    inside_functions.update(range(node.lineno, node.end_lineno + 1))
    imports = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.update(range(node.lineno, node.end_lineno + 1))
    problems = []
    for number, line in enumerate(source.splitlines(), 1):
        m = _NOQA_F401.search(line)
        if not m or number in inside_functions:
            continue
        if "F401" in m.group(0).upper() or number in imports:  # a bare noqa matters on import lines only
            problems.append(f"{path}:{number}: `{m.group(0).strip()}` outside a function's import: "
                            "an unused import kept (a re-export?)")
    return problems


def package_sources():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                rel = path.relative_to(REPO)
                yield rel, path.read_text(encoding="utf-8")


def test_no_module_reexports_what_it_imports():
    """Outside the two package roots, every name imported at module level is used in the module, and
    no __all__ lists an imported name; the roots import only what they use or list in __all__."""
    problems = []
    checked = 0
    for rel, source in package_sources():
        problems += reexport_problems(rel.as_posix(), source, rel in ROOTS)
        checked += 1
    assert checked > 80
    assert not problems, "\n".join(problems)


def test_no_noqa_f401_outside_optional_dependency_checks():
    problems = [p for rel, source in package_sources() for p in noqa_problems(rel.as_posix(), source)]
    assert not problems, "\n".join(problems)


# ---- the checks can fail --------------------------------------------------------------------------

def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_graph_checks_catch_circles_and_wrong_arrows(tmp_path):
    """On a made-up package: imports resolved (relative, in functions, ``from pkg import sub``), a
    circle named, each wrong arrow named with file and line."""
    _write(tmp_path, {
        "pkg/__init__.py": '"""Root."""\nfrom pkg.low.b import f\n',  # the public face
        "pkg/low/__init__.py": '"""Low."""\n',
        "pkg/low/a.py": '"""A."""\nfrom . import b\n',
        "pkg/low/b.py": '"""B."""\ndef f():\n    from .a import x\n',  # a circle: a -> b -> a
        "pkg/low/c.py": '"""C."""\ndef f():\n    from pkg.top import cmd\n',  # up
        "pkg/left/__init__.py": '"""Left."""\n',
        "pkg/left/l.py": '"""L."""\nimport pkg.right.r\nfrom ..low import a, helper\n',  # sideways; a; low/__init__
        "pkg/right/__init__.py": '"""Right."""\nfrom ...outside import nothing\n',  # above the package
        "pkg/right/r.py": '"""R."""\nfrom pkg import run\nfrom pkg.nowhere import x\n',  # root; unresolved
        "pkg/top/__init__.py": '"""Top."""\n',
        "pkg/top/cmd.py": '"""Cmd."""\nfrom pkg.left.l import g\n',
    })
    floors = (("low",), ("left", "right"), ("top",), (gen.ROOT,))
    graph = gen.import_graph("pkg", tmp_path)
    edges = {graph.relative(s): sorted(graph.relative(t) for t in ts) for s, ts in graph.edges().items()}
    assert edges["low.a"] == ["low.b"] and edges["low.b"] == ["low.a"] and edges["low.c"] == ["top.cmd"]
    assert edges["left.l"] == ["low", "low.a", "right.r"] and edges["pkg"] == ["low.b"]
    assert gen.find_cycles(graph) == [["pkg.low.a", "pkg.low.b", "pkg.low.a"]]
    assert circles_message(graph).splitlines() == ["import circle in pkg: pkg.low.a -> pkg.low.b -> pkg.low.a",
                                                   "  pkg/low/a.py:2: from . import b",
                                                   "  pkg/low/b.py:3: from .a import x"]
    problems = gen.floor_problems(graph, floors)
    assert len(problems) == 4, problems
    assert problems[0].startswith("pkg/left/l.py:2: `import pkg.right.r`: ") and "sideways" in problems[0]
    assert problems[1].startswith("pkg/low/c.py:3: `from pkg.top import cmd`: ") and "an arrow up" in problems[1]
    assert problems[2].startswith("pkg/right/r.py:2: `from pkg import run`: ") and "package root" in problems[2]
    assert problems[3] == "pkg/right/r.py:3: `from pkg.nowhere import x` names no module of pkg"
    assert gen.floor_problems(graph, floors[:1] + floors[2:])[0] == \
        "pkg/left/__init__.py: `left` is on no floor (add it to FLOORS in docs/gen_architecture.py)"


def test_reexport_checks_catch_reexports():
    source = ('"""M."""\nfrom __future__ import annotations\nimport os.path\nimport typing as t\n'
              'from x import used, passed_on\nfrom y import listed\n__all__ = ["listed", "f"]\n'
              'try:\n    from z import fallback\nexcept ImportError:\n    fallback = None\n'
              '@used\ndef f(a: t.Any) -> None:\n    import lazy  # noqa: F401\n    return os.path.join(a)\n')
    unused = "is imported and not used here (a re-export? callers import it from the module that defines it)"
    assert reexport_problems("m.py", source, is_root=False) == [
        f"m.py:5: `passed_on` {unused}",
        f"m.py:6: `listed` {unused}",
        f"m.py:9: `fallback` {unused}",
        "m.py: __all__ lists `listed`, which it imports (a re-export)",
    ]
    assert [p.split(":")[1] for p in reexport_problems("m.py", source, is_root=True)] == ["5", "9"]
    assert reexport_problems("m.py", source + "print(passed_on, fallback)\n", is_root=True) == []
    assert noqa_problems("m.py", source) == []
    moved = source.replace("from y import listed", "from y import listed  # noqa: F401")
    assert noqa_problems("m.py", moved) == [
        "m.py:6: `# noqa: F401` outside a function's import: an unused import kept (a re-export?)"]
    assert len(noqa_problems("m.py", source + "from q import r  # noqa\nx = 1  # noqa\n")) == 1
