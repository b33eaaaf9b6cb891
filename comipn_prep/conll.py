"""Read and write the Twitter MNER CoNLL files exactly as the field does.

Format (see ``docs/data-format.md``): ``IMGID:<id>`` opens a tweet, then one ``token<TAB>label`` line
per token, and a blank line closes the tweet (the last one may instead be closed by end of file).
Labels are BIO over PER / LOC / ORG / MISC, with OTHER read as MISC; the label as written in the file
is kept so that writing a file back gives the same bytes.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .layout import imgid_problem, shown as _shown

ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")
# OTHER is Twitter-2015's name for MISC; the loaders of the field map it.
TYPE_ALIASES = {"OTHER": "MISC"}
IMGID_PREFIX = "IMGID:"
_LABEL_RE = re.compile(r"^(O|[BI]-(PER|LOC|ORG|MISC|OTHER))$")


def normalise_label(raw: str) -> str:
    """Map a label as written in a file to the label the model sees (OTHER -> MISC)."""
    if raw == "O":
        return raw
    prefix, _, etype = raw.partition("-")
    return f"{prefix}-{TYPE_ALIASES.get(etype, etype)}"


def bio_labels(types: Sequence[str] = ENTITY_TYPES) -> list[str]:
    """The label list of a BIO scheme: ``O`` first, then ``B-X`` / ``I-X`` per type."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


@dataclass
class Tweet:
    """One tweet: its image id, tokens and labels (normalised and as written)."""

    imgid: str
    tokens: list[str]
    raw_labels: list[str] | None = None  # None for unlabelled input
    line: int = 0  # 1-based line of the IMGID line in the source file (0 when built in memory)

    @property
    def labels(self) -> list[str] | None:
        if self.raw_labels is None:
            return None
        return [normalise_label(label) for label in self.raw_labels]

    @property
    def image_name(self) -> str:
        """The file name the field's loaders look up for this tweet's image."""
        return f"{self.imgid}.jpg"

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class ConllFile:
    """The tweets of one file and the layout details needed to write it back byte for byte."""

    tweets: list[Tweet]
    newline: str = "\n"
    final_blank_line: bool = True  # False: last tweet closed by end of file (Twitter-2015)
    bom: bool = False
    path: Path | None = None

    def __iter__(self):
        return iter(self.tweets)

    def __len__(self) -> int:
        return len(self.tweets)


@dataclass
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ConllFormatError(ValueError):
    """Raised with every problem found in a file, each as ``path:line: what is wrong``."""

    def __init__(self, problems: list[Problem], shown: int = 20):
        self.problems = problems
        lines = [str(p) for p in problems[:shown]]
        if len(problems) > shown:
            lines.append(f"... and {len(problems) - shown} more problems")
        super().__init__("\n".join(lines))


@dataclass
class _Builder:
    path: str
    labeled: bool | None
    tweets: list[Tweet] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    current: Tweet | None = None

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def close(self) -> None:
        tweet, self.current = self.current, None
        if tweet is None:
            return
        # A tweet whose every line was already reported needs no second message.
        if not tweet.tokens and not any(p.line > tweet.line for p in self.problems):
            self.problem(tweet.line, f"IMGID:{tweet.imgid} has no tokens")
        if tweet.tokens:
            self.tweets.append(tweet)

    def open(self, lineno: int, imgid: str) -> None:
        self.close()
        if not imgid:
            self.problem(lineno, "IMGID: line without an image id")
        elif (why := imgid_problem(imgid)) is not None:
            # The id becomes file names (image, crops): a path in it would read and write elsewhere.
            self.problem(lineno, f"IMGID {_shown(imgid)} {why}; an IMGID must be a plain file stem")
        elif imgid in self.seen:
            self.problem(lineno, f"duplicate IMGID {imgid} (first at line {self.seen[imgid]})")
        else:
            self.seen[imgid] = lineno
        self.current = Tweet(imgid=imgid, tokens=[], raw_labels=[] if self.labeled is not False else None,
                             line=lineno)

    def token(self, lineno: int, text: str) -> None:
        if self.current is None:
            self.problem(lineno, f"token before any IMGID: line: {text!r}")
            return
        if "\t" not in text:
            if self.labeled is None and not self.current.tokens and not self.tweets:
                self.labeled = False  # first token decides: unlabelled input
                self.current.raw_labels = None
            if self.labeled is False:
                self.current.tokens.append(text)
                return
            self.problem(lineno, f"expected 'token<TAB>label', found no tab: {text!r}")
            return
        if self.labeled is False:
            self.problem(lineno, f"a labelled line in an unlabelled file: {text!r}")
            return
        self.labeled = True
        token, label = text.split("\t", 1)
        if "\t" in label:
            self.problem(lineno, f"expected one tab, found {text.count(chr(9))}: {text!r}")
            return
        if token == "":
            self.problem(lineno, "empty token before the tab")
            return
        if not _LABEL_RE.match(label):
            self.problem(lineno, f"label {label!r} is not BIO over PER/LOC/ORG/MISC/OTHER")
            return
        self.current.tokens.append(token)
        assert self.current.raw_labels is not None
        self.current.raw_labels.append(label)


def parse_conll(text: str, path: str = "<string>", labeled: bool | None = True) -> ConllFile:
    """Parse the text of a CoNLL file.

    ``labeled``: True (default) requires ``token<TAB>label`` lines; False reads one token per line
    (tags to predict); None decides from the first token line.
    Raises :class:`ConllFormatError` listing every problem, as ``path:line: message``.
    """
    bom = text.startswith("\ufeff")
    if bom:
        text = text[1:]
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    # A file that ends with a newline leaves one empty string after the last split.
    if lines and lines[-1] == "":
        lines.pop()
    builder = _Builder(path=path, labeled=labeled)
    for lineno, line in enumerate(lines, start=1):
        if newline == "\n" and line.endswith("\r"):
            line = line[:-1]
        if line == "":
            builder.close()
        elif line.startswith(IMGID_PREFIX):
            builder.open(lineno, line[len(IMGID_PREFIX):])
        else:
            builder.token(lineno, line)
    builder.close()
    if builder.problems:
        raise ConllFormatError(builder.problems)
    final_blank = bool(lines) and lines[-1] == ""
    return ConllFile(tweets=builder.tweets, newline=newline, final_blank_line=final_blank, bom=bom,
                     path=Path(path))


def read_conll(path: str | os.PathLike, labeled: bool | None = True) -> ConllFile:
    """Read a Twitter CoNLL file; see :func:`parse_conll`."""
    path = Path(path)
    return parse_conll(_decode_utf8(path), path=str(path), labeled=labeled)


def _decode_utf8(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 raises :class:`ConllFormatError` naming ``path:line``."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConllFormatError([Problem(str(path), line, f"not UTF-8 (byte 0x{data[err.start]:02x})")]) from None


def format_conll(tweets: Iterable[Tweet], newline: str = "\n", final_blank_line: bool = True,
                 bom: bool = False, extra_columns: Sequence[Sequence[str]] | None = None) -> str:
    """Write tweets in the field's format. ``extra_columns`` adds, per tweet, one more tab-separated
    column (e.g. predicted labels beside the gold ones)."""
    blocks = []
    for i, tweet in enumerate(tweets):
        rows = [f"{IMGID_PREFIX}{tweet.imgid}"]
        extra = extra_columns[i] if extra_columns is not None else None
        for j, token in enumerate(tweet.tokens):
            cols = [token]
            if tweet.raw_labels is not None:
                cols.append(tweet.raw_labels[j])
            if extra is not None:
                cols.append(extra[j])
            rows.append("\t".join(cols))
        blocks.append(newline.join(rows) + newline)
    text = newline.join(blocks)
    if blocks and final_blank_line:
        text += newline
    return ("\ufeff" if bom else "") + text


def write_conll(path: str | os.PathLike, data: ConllFile | Sequence[Tweet], **kwargs) -> None:
    """Write a file atomically (temp file + rename); a :class:`ConllFile` keeps its own layout."""
    if isinstance(data, ConllFile):
        kwargs = {"newline": data.newline, "final_blank_line": data.final_blank_line, "bom": data.bom, **kwargs}
        tweets: Sequence[Tweet] = data.tweets
    else:
        tweets = data
    text = format_conll(tweets, **kwargs)
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write to a temp file beside ``path`` and rename it over, so a kill never leaves half a file.
    ``durable`` also flushes it to disk before the rename (skip it for files that can be recomputed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def entity_spans(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans ``(type, start, end)`` (end exclusive) as conlleval / seqeval's default mode reads
    BIO: an ``I-X`` that does not continue an ``X`` entity starts a new one."""
    spans: list[tuple[str, int, int]] = []
    etype, start = None, 0
    for i, label in enumerate(list(labels) + ["O"]):
        prefix, _, t = label.partition("-")
        continues = prefix == "I" and t == etype
        if etype is not None and not continues:
            spans.append((etype, start, i))
            etype = None
        if prefix in ("B", "I") and not continues:
            etype, start = t, i
    return spans


class EmptyInputError(ValueError):
    """An input file or split that holds no tweet: almost always a wrong path or a failed copy, so every
    command refuses it (exit 2) naming the file, unless the command offers an explicit option."""


def require_tweets(path: str | os.PathLike, count: int, what: str = "file", hint: str = "") -> None:
    """Raise :class:`EmptyInputError` naming ``path`` when ``count`` is 0 (``hint``: the way out)."""
    if count == 0:
        raise EmptyInputError(f"{path}: the {what} holds no tweet{'; ' + hint if hint else ''}")


def read_utf8_text(path: str | os.PathLike) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading BOM dropped); a byte that is not UTF-8 raises
    :class:`ConllFormatError` naming ``path:line``, as :func:`read_conll` does."""
    text = _decode_utf8(Path(path))
    return text[1:] if text.startswith("\ufeff") else text
