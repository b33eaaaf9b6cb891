"""Generate docs/cli.md from the click help of ``comipn-prep`` and ``comipn-train`` (every subcommand).

    .venv/bin/python docs/gen_cli.py            # rewrite docs/cli.md
    .venv/bin/python docs/gen_cli.py --check    # exit 1 if docs/cli.md is out of date

The text is the help each command prints (``--help``), rendered at a fixed width so that it does not
depend on the terminal; tests/test_docs.py checks that docs/cli.md equals it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from comipn_prep.conll import atomic_write_bytes

DOCS = Path(__file__).resolve().parent
CLI_MD = DOCS / "cli.md"
WIDTH = 100  # help text width, fixed so the output is the same on every terminal

# (program name, "module:attribute" of its click group)
PROGRAMS = (
    ("comipn-prep", "comipn_prep.cli:main"),
    ("comipn-train", "comipn_model.cli:main"),
)

HEADER = """\
# Command-line reference

Generated from the commands' own `--help` by `bin/gen-cli-docs` (`docs/gen_cli.py`); do not edit by
hand: `tests/test_docs.py` fails when this file and the commands disagree. Every command also prints
this text with `-h` / `--help`.
"""


@dataclass
class CommandDoc:
    path: tuple[str, ...]  # ("comipn-prep", "run")
    command: click.Command
    help_text: str

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def anchor(self) -> str:
        return self.name.replace(" ", "-")


def load_group(spec: str) -> click.Command:
    module_name, _, attr = spec.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def walk(command: click.Command, path: tuple[str, ...], parent: click.Context | None = None) -> list[CommandDoc]:
    """This command and every subcommand below it, depth first, subcommands in name order."""
    # make_context applies the command's context_settings (e.g. -h); resilient parsing skips
    # required-argument checks, since no arguments are given.
    ctx = command.make_context(path[-1], [], parent=parent, resilient_parsing=True,
                               terminal_width=WIDTH, max_content_width=WIDTH)
    if parent is None:
        ctx.info_name = path[-1]
    docs = [CommandDoc(path, command, command.get_help(ctx))]
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                docs.extend(walk(sub, path + (name,), parent=ctx))
    return docs


def all_commands() -> list[CommandDoc]:
    docs: list[CommandDoc] = []
    for prog, spec in PROGRAMS:
        docs.extend(walk(load_group(spec), (prog,)))
    return docs


def render(docs: list[CommandDoc] | None = None) -> str:
    """The whole of docs/cli.md."""
    docs = all_commands() if docs is None else docs
    out = [HEADER, "## Contents", ""]
    for doc in docs:
        indent = "  " * (len(doc.path) - 1)
        out.append(f"{indent}- [`{doc.name}`](#{doc.anchor})")
    out.append("")
    for doc in docs:
        out += [f'<a id="{doc.anchor}"></a>', "", f"## `{doc.name}`", "", "```text",
                doc.help_text.rstrip(), "```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/cli.md from the commands' click help.")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if docs/cli.md is stale")
    parser.add_argument("--output", type=Path, default=CLI_MD, help="where to write (default: docs/cli.md)")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run bin/gen-cli-docs\n")
            return 1
        return 0
    atomic_write_bytes(args.output, text.encode("utf-8"))
    sys.stderr.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
