"""The noun-phrase file format: one JSON object per tweet, one line each, in file order.

```
{"imgid": "1015799", "tokens": ["RT", "@JayKenMinaj", ...],
 "nps": [{"start": 8, "end": 10, "text": "George Zimmerman"}]}
```
(one line in the file)
``start`` / ``end`` index the tweet's own tokens (end exclusive); spans never overlap and are sorted;
``text`` is the NP's tokens joined by single spaces.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from comipn_prep.jsonl import json_lines
from comipn_prep.layout import imgid_problem, shown


class NPFormatError(ValueError):
    """A malformed ``.nps.jsonl`` line, reported as ``path:line: what is wrong``."""


@dataclass(slots=True)
class NounPhrase:
    """Tokens ``start`` to ``end`` (exclusive) of a tweet, and their text."""

    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(slots=True)
class TweetNPs:
    """The noun phrases of one tweet, as spans of its own tokens."""

    imgid: str
    tokens: list[str]
    nps: list[NounPhrase] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"imgid": self.imgid, "tokens": self.tokens, "nps": [np.to_dict() for np in self.nps]}

    def spans(self) -> list[tuple[int, int]]:
        return [(np.start, np.end) for np in self.nps]


def np_text(tokens: list[str], start: int, end: int) -> str:
    return " ".join(tokens[start:end])


def format_line(item: TweetNPs) -> str:
    # ensure_ascii=False keeps emoji and accents readable; the file is UTF-8.
    return json.dumps(item.to_dict(), ensure_ascii=False)


def _parse_item(obj: object, where: str) -> TweetNPs:
    if not isinstance(obj, dict):
        raise NPFormatError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    missing = [k for k in ("imgid", "tokens", "nps") if k not in obj]
    if missing:
        raise NPFormatError(f"{where}: missing key(s) {', '.join(missing)}")
    imgid, tokens, nps = obj["imgid"], obj["tokens"], obj["nps"]
    if not isinstance(imgid, str):
        raise NPFormatError(f"{where}: 'imgid' must be a string")
    if (why := imgid_problem(imgid)) is not None:  # it becomes image and crop file names
        raise NPFormatError(f"{where}: imgid {shown(imgid)} {why}; an IMGID must be a plain file stem")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise NPFormatError(f"{where}: 'tokens' must be a list of strings")
    if not isinstance(nps, list):
        raise NPFormatError(f"{where}: 'nps' must be a list")
    out: list[NounPhrase] = []
    prev_end = 0
    for k, np in enumerate(nps):
        if not isinstance(np, dict) or not all(key in np for key in ("start", "end", "text")):
            raise NPFormatError(f"{where}: nps[{k}] must be an object with start, end and text")
        start, end, text = np["start"], np["end"], np["text"]
        if not (isinstance(start, int) and isinstance(end, int) and isinstance(text, str)):
            raise NPFormatError(f"{where}: nps[{k}]: start/end must be integers and text a string")
        if not 0 <= start < end <= len(tokens):
            raise NPFormatError(f"{where}: nps[{k}]: span {start}..{end} outside the tweet's "
                                f"{len(tokens)} tokens")
        if start < prev_end:
            raise NPFormatError(f"{where}: nps[{k}]: span {start}..{end} overlaps or precedes the one before")
        prev_end = end
        out.append(NounPhrase(start, end, text))
    return TweetNPs(imgid=imgid, tokens=list(tokens), nps=out)


def read_nps_jsonl(path: str | os.PathLike) -> list[TweetNPs]:
    """Read a ``<split>.nps.jsonl`` file; a bad line raises :class:`NPFormatError` naming ``path:line``."""
    return [_parse_item(obj, where) for _, where, obj in json_lines(path, NPFormatError)]


def write_nps_jsonl(path: str | os.PathLike, items: Iterable[TweetNPs]) -> None:
    """Write the file atomically (temp file + rename): a kill never leaves half a file."""
    from ..conll import atomic_write_bytes

    text = "".join(format_line(item) + "\n" for item in items)
    atomic_write_bytes(Path(path), text.encode("utf-8"))
