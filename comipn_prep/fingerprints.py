"""Which files a result was computed on: the sha256 of each split (and aux dict), the released versions
it matches, and the warnings a reviewer needs (valid and test the same file, or sharing tweets).

Two papers quoting "Twitter-2015" may not have trained on the same labels (HVPNeT relabelled part of
it), and one released Twitter-2017 ``test.txt`` was a copy of ``valid.txt``; a hash names the files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping, Sequence

from comipn_prep.conll import Tweet

# The versions we can name: the UMT authors' files (jefferyYu/UMT, folder data/), shipped in data/.
KNOWN_FILES = {
    "a6246e37aa1c8acd738747fa8257e01775f2a1cc0d4f36f82f9d41d6246ad6fa": "UMT original twitter2015/train.txt",
    "9dcc7f9df7331de3c9cdf67a3450e041c41c6254b5e43925c576e2dfaaabe2ad": "UMT original twitter2015/valid.txt",
    "edb2665b89bfe58bca06a2c10b9b31cbfa95456135b6a4cbf55c872e48d9b8f9": "UMT original twitter2015/test.txt",
    "801e149e8635b19d66b4ec1212c329be340ada501b35c5fa55455fb6f53633be": "UMT original twitter2017/train.txt",
    "41b5db90cb32059c14c2c3ccd50845fb77f1e3d3e4f7d0c210a61bc507d8a73e": "UMT original twitter2017/valid.txt",
    "a7d9e172ae85bd3e35276eb2b01ce223321bdc92a47b234e24305d72e7a05243": "UMT original twitter2017/test.txt",
}
OVERLAP_WARN = 0.05  # share of one split's tweets found in another above which a run is not clean
PAIRS = (("valid", "test"), ("train", "test"))  # the overlaps that make a test score mean less


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: str | Path) -> dict:
    """``{"path", "sha256", "known_as"}``: ``known_as`` names a released version (None: not one we know)."""
    sha = sha256_of(path)
    return {"path": str(Path(path).absolute()), "sha256": sha, "known_as": KNOWN_FILES.get(sha)}


def shared_share(a: Sequence[Tweet], b: Sequence[Tweet]) -> float:
    """The share of ``b``'s tweets whose token sequence is also a tweet of ``a`` (0 when ``b`` is empty)."""
    seen = {tuple(t.tokens) for t in a}
    return sum(tuple(t.tokens) in seen for t in b) / len(b) if b else 0.0


def split_warnings(files: Mapping[str, dict], tweets: Mapping[str, Sequence[Tweet]] | None = None) -> list[str]:
    """What a reviewer must know about the splits: valid or train the same file as test, or sharing more
    than 5% of test's tweets (``files``: :func:`describe_file` per split; ``tweets``: the splits read)."""
    out = []
    for a, b in PAIRS:
        if a not in files or b not in files:
            continue
        if files[a]["sha256"] == files[b]["sha256"]:
            out.append(f"{a}.txt and {b}.txt are the same file (sha256 {files[b]['sha256'][:12]}...): scores on "
                       f"{b} then measure {a}")
        elif tweets is not None and a in tweets and b in tweets:
            share = shared_share(tweets[a], tweets[b])
            if share > OVERLAP_WARN:
                out.append(f"{100 * share:.1f}% of {b}.txt's tweets are also in {a}.txt "
                           f"(over {100 * OVERLAP_WARN:.0f}%): {b} is not held out")
    return out


def fingerprint(split_paths: Mapping[str, str | Path], aux_paths: Mapping[str, str | Path | None] | None = None,
                tweets: Mapping[str, Sequence[Tweet]] | None = None) -> dict:
    """``{"splits": {split: describe_file}, "aux_dicts": {split: describe_file | None}, "warnings": [...]}``
    for a run report or ``comipn-prep stats``."""
    files = {split: describe_file(path) for split, path in split_paths.items()}
    aux = {split: describe_file(path) if path is not None and Path(path).is_file() else None
           for split, path in (aux_paths or {}).items()}
    return {"splits": files, "aux_dicts": aux, "warnings": split_warnings(files, tweets)}
