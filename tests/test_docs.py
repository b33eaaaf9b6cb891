"""The docs agree with the code: docs/cli.md is the commands' own help, every command is documented,
and every command line in the docs' code blocks names real commands, options and scripts."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import sys
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PROGRAMS = ("comipn-prep", "comipn-train")
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}


def _load_gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen_cli = _load_gen_cli()


@pytest.fixture(scope="module")
def commands():
    return gen_cli.all_commands()


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md")) + [REPO / "README.md"]


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line of the opening fence) of every fenced block."""
    blocks = []
    for m in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        blocks.append((m.group(1).lower(), m.group(2), text.count("\n", 0, m.start()) + 1))
    return blocks


def shell_commands(body: str) -> list[list[str]]:
    """The simple commands of a shell snippet, as argument lists (comments dropped, `\\` lines joined)."""
    body = re.sub(r"\\\n", " ", body)
    out = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        current: list[str] = []
        for w in words:
            if w in ("&&", "||", "|", ";", "&"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(w)
        if current:
            out.append(current)
    return out


def options_by_name(command: click.Command, ctx: click.Context) -> dict[str, click.Option]:
    names: dict[str, click.Option] = {}
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                names[opt] = param
    return names


def check_invocation(words: list[str], groups: dict[str, click.Command]) -> list[str]:
    """Problems with one command line (empty if it names a real command and only its options)."""
    problems = []
    for start, word in enumerate(words):
        prog = os.path.basename(word)
        if prog not in groups:
            continue
        command = groups[prog]
        ctx = command.make_context(prog, [], resilient_parsing=True)
        path = [prog]
        rest = iter(words[start + 1:])
        for arg in rest:
            if arg == "--" and len(path) > 1:  # what follows goes to the program itself (ablate -- OPTIONS)
                command, path = groups[prog], [prog]
                ctx = command.make_context(prog, [], resilient_parsing=True)
            elif arg.startswith("-") and arg != "-":
                opt, eq, _ = arg.partition("=")
                option = options_by_name(command, ctx).get(opt)
                if option is None:
                    problems.append(f"`{' '.join(path)}` has no option {opt}")
                elif not (option.is_flag or option.count or eq):
                    for _ in range(max(option.nargs, 1)):  # the option's value(s)
                        next(rest, None)
            elif isinstance(command, click.Group):
                sub = command.get_command(ctx, arg)
                if sub is None:
                    problems.append(f"`{' '.join(path)}` has no command {arg!r}")
                    break
                path.append(arg)
                command = sub
                ctx = command.make_context(arg, [], parent=ctx, resilient_parsing=True)
            # else: an argument or an option's value
        break
    return problems


@pytest.fixture(scope="module")
def groups():
    return {prog: gen_cli.load_group(spec) for prog, spec in gen_cli.PROGRAMS}


def test_cli_md_is_the_generated_help():
    """docs/cli.md is exactly what the commands print: regenerate with bin/gen-cli-docs."""
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == gen_cli.render(), \
        "docs/cli.md is out of date: run bin/gen-cli-docs"


def test_every_command_and_option_is_in_cli_md(commands):
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    by_title = {s.split("\n", 1)[0].strip("` "): s for s in sections}
    assert {c.path[0] for c in commands} == set(PROGRAMS)
    for doc in commands:
        assert doc.name in by_title, f"{doc.name} has no section in docs/cli.md"
        section = by_title[doc.name]
        ctx = doc.command.make_context(doc.path[-1], [], resilient_parsing=True)
        for param in doc.command.get_params(ctx):
            if isinstance(param, click.Option) and not param.hidden:
                assert any(o in section for o in param.opts), f"{doc.name}: {param.opts} undocumented"
            if isinstance(param, click.Argument):
                assert param.make_metavar(ctx) in section or param.name.upper() in section


def test_generator_check_mode(tmp_path):
    out = tmp_path / "cli.md"
    assert gen_cli.main(["--output", str(out)]) == 0
    assert gen_cli.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "stale\n")
    assert gen_cli.main(["--check", "--output", str(out)]) == 1


def test_invocation_checker_catches_mistakes(groups):
    # The checker below must be able to fail, or the docs test proves nothing.
    assert check_invocation(["comipn-prep", "stats", "data/x", "--json"], groups) == []
    assert check_invocation([".venv/bin/comipn-prep", "-v", "stats", "--jsn", "d"], groups) == \
        ["`comipn-prep stats` has no option --jsn"]
    assert check_invocation(["comipn-prep", "no-such-command"], groups) == \
        ["`comipn-prep` has no command 'no-such-command'"]
    assert shell_commands("a && comipn-prep stats \\\n  d --json | head  # note\n") == \
        [["a"], ["comipn-prep", "stats", "d", "--json"], ["head"]]


def test_docs_code_blocks_name_real_commands_options_and_scripts(groups):
    problems = []
    seen = 0
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for lang, body, line in code_blocks(text):
            if lang not in SHELL_LANGS:
                continue
            for words in shell_commands(body):
                where = f"{path.relative_to(REPO)}:{line}"
                problems += [f"{where}: {p}" for p in check_invocation(words, groups)]
                seen += any(os.path.basename(w) in groups for w in words)
                for w in words:
                    if re.fullmatch(r"(\./)?bin/[\w.-]+", w):
                        script = REPO / w.removeprefix("./")
                        if not (script.is_file() and os.access(script, os.X_OK)):
                            problems.append(f"{where}: {w} is not an executable script")
    assert not problems, "\n".join(problems)
    assert seen > 0, "no command lines found in the docs' code blocks"


def test_every_subcommand_appears_in_a_guide(commands):
    """Beyond the generated reference, each subcommand is shown in a hand-written page."""
    guides = "\n".join(p.read_text(encoding="utf-8") for p in doc_files() if p.name != "cli.md")
    missing = [d.name for d in commands if len(d.path) > 1 and d.name not in guides]
    assert not missing, f"not shown in any guide: {missing}"


def test_every_bench_script_is_on_the_benchmarks_page():
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    scripts = sorted((REPO / "tests" / "bench").glob("bench_*.py"))
    missing = [s.name for s in scripts if f"tests/bench/{s.name}" not in page]
    assert not missing, f"bench scripts not in docs/benchmarks.md: {missing}"


def test_bench_commands_in_docs_use_real_scripts_and_options():
    problems = []
    for path in doc_files():
        for lang, body, line in code_blocks(path.read_text(encoding="utf-8")):
            if lang not in SHELL_LANGS:
                continue
            for words in shell_commands(body):
                for i, w in enumerate(words):
                    if not re.fullmatch(r"tests/bench/bench_\w+\.py", w):
                        continue
                    script = REPO / w
                    if not script.is_file():
                        problems.append(f"{path.name}:{line}: {w} does not exist")
                        continue
                    source = script.read_text(encoding="utf-8")
                    # After a bare "--" the words are comipn-train options, passed through to it.
                    train_source = (REPO / "comipn_model" / "cli" / "__init__.py").read_text(encoding="utf-8")
                    passed_on = False
                    for opt in words[i + 1:]:
                        opt = opt.split("=", 1)[0]
                        if opt == "--":
                            passed_on = True
                        elif opt.startswith("--") and not re.search(
                                rf'["/]{re.escape(opt)}["/]' if passed_on else f'"{re.escape(opt)}"',
                                train_source if passed_on else source):
                            where = "comipn-train (after --)" if passed_on else w
                            problems.append(f"{path.name}:{line}: {where} has no option {opt}")
    assert not problems, "\n".join(problems)


def test_architecture_names_every_module():
    """docs/architecture.md's generated tables have a row for every module of both packages, found here
    from the files (tests/test_architecture.py checks the tables against the code)."""
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    generated = page[page.index("<!-- begin: generated"):page.index("<!-- end: generated")]
    model_part, prep_part = generated.split("### `comipn_prep` modules")
    missing = []
    for package, part in (("comipn_model", model_part), ("comipn_prep", prep_part)):
        rows = set(re.findall(r"^\| `([\w.]+)` \|", part, flags=re.MULTILINE))
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO / package)
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if (".".join(parts) or package) not in rows:
                missing.append(f"{package}/{rel.as_posix()}")
    assert not missing, f"no row in docs/architecture.md (run python docs/gen_architecture.py): {missing}"


def test_data_format_examples_match_the_code(tmp_path):
    """The NP line and the manifest header shown in docs/data-format.md are what the code reads."""
    from comipn_prep.grounding.manifest import COLUMNS
    from comipn_prep.nps.io import read_nps_jsonl

    blocks = code_blocks((DOCS / "data-format.md").read_text(encoding="utf-8"))
    np_lines = [b for lang, b, _ in blocks if lang == "json" and '"nps"' in b]
    assert np_lines, "no NP example in docs/data-format.md"
    path = tmp_path / "train.nps.jsonl"
    path.write_text(np_lines[0], encoding="utf-8")
    (item,) = read_nps_jsonl(path)
    assert all(np.text == " ".join(item.tokens[np.start:np.end]) for np in item.nps)
    headers = [b.splitlines()[0] for lang, b, _ in blocks if b.startswith("imgid,status,")]
    assert headers == [",".join(COLUMNS)]


def test_relative_links_resolve():
    problems = []
    for path in doc_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#", 1)[0]).exists():
                problems.append(f"{path.relative_to(REPO)}: broken link {target}")
    assert not problems, "\n".join(problems)


def test_data_format_np_example_is_what_extract_nps_writes(tmp_path):
    """The NP line shown in docs/data-format.md is today's TextBlob output for that sample tweet."""
    from comipn_prep.nps.extract import extract_nps

    blocks = code_blocks((DOCS / "data-format.md").read_text(encoding="utf-8"))
    shown = json.loads(next(b for lang, b, _ in blocks if lang == "json" and '"nps"' in b))
    extract_nps(REPO / "data" / "sample" / "sample", tmp_path, backend="textblob", splits=["train"],
                progress=False)
    written = [json.loads(line) for line in (tmp_path / "train.nps.jsonl").read_text().splitlines()]
    assert shown in written, "docs/data-format.md: refresh the NP example from comipn-prep extract-nps"


def test_inference_examples_run(tmp_path, monkeypatch, make_tiny_encoder, make_checkpoint):
    """docs/inference.md: its files are written, its Python blocks run and its command lines exit 0, in
    order, in a folder holding a small all-switches model at runs/sample (random-weight YOLO and CLIP
    recorded as its grounding settings) and the repository's data/."""
    import contextlib
    import io

    from click.testing import CliRunner

    from comipn_model.cli import main

    make_checkpoint(tmp_path / "runs" / "sample" / "best.pt", make_tiny_encoder(tmp_path / "encoder"))
    (tmp_path / "data").symlink_to(REPO / "data", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    text = (DOCS / "inference.md").read_text(encoding="utf-8")
    fences = re.findall(r"^```([^\n]*)\n(.*?)^```", text, flags=re.M | re.S)
    ran = {"python": 0, "commands": 0, "files": 0}
    for info, body in fences:
        words = info.split()
        lang = words[0].lower() if words else ""
        files = [w.split("=", 1)[1] for w in words if w.startswith("file=")]
        if files:
            (tmp_path / files[0]).write_text(body, encoding="utf-8")
            ran["files"] += 1
        elif lang == "python" and "no-run" not in words:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(body, f"docs/inference.md python block {ran['python'] + 1}", "exec"), {})
            assert printed.getvalue() or "print(" not in body
            ran["python"] += 1
        elif lang in SHELL_LANGS:
            for command in shell_commands(body):
                assert command[0] == "comipn-train", f"docs/inference.md runs {command[0]}: only comipn-train here"
                result = CliRunner().invoke(main, command[1:])
                assert result.exit_code == 0, f"{' '.join(command)}\n{result.output}"
                ran["commands"] += 1
    assert ran == {"python": 6, "commands": 5, "files": 2}
    rows = [json.loads(line) for line in (tmp_path / "tagged.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["launch", "paris", "tokens"]
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert all(len(r["marginals"]) == len(r["tokens"]) for r in scored)
    assert all(r["text"][e["start"]:e["end"]] == e["word"] for r in scored for e in r["entities"])
    assert rows[0]["crops"] and rows[0]["image"].endswith("9100004.jpg") and rows[1]["crops"] == []
    # the exported model tags like the checkpoint it came from
    assert (tmp_path / "tagged-exported.txt").read_text() == (tmp_path / "tagged.txt").read_text()
    assert (tmp_path / "models" / "sample-copy" / "model.safetensors").is_file()
    from huggingface_hub import metadata_load

    assert metadata_load(tmp_path / "models" / "sample" / "README.md")["license"] == "mit"


def test_training_python_example_runs(tmp_path, monkeypatch):
    """docs/training.md's Python block trains, selects on dev and scores test, run as written from a
    folder holding the repository's data/."""
    import contextlib
    import io

    (tmp_path / "data").symlink_to(REPO / "data", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    blocks = [body for lang, body, _ in code_blocks((DOCS / "training.md").read_text(encoding="utf-8"))
              if lang == "python"]
    assert len(blocks) == 1, "docs/training.md: expected one Python example"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], "docs/training.md python block", "exec"), {})
    best_epoch, f1, run_dir = printed.getvalue().split()
    assert best_epoch == "1" and 0.0 <= float(f1) <= 1.0
    assert (Path(run_dir) / "test_report.json").is_file() and (Path(run_dir) / "best.pt").is_file()
