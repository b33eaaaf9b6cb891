"""The repository stands alone: the real splits ship in data/, unchanged, and nothing points outside."""

from __future__ import annotations

import hashlib
import os

import pytest

# SHA-256 of the files as the UMT authors distribute them (data/README.md): a re-saved or re-encoded
# copy would change every figure that the docs quote.
SPLITS_SHA256 = {
    "twitter2015/train.txt": "a6246e37aa1c8acd738747fa8257e01775f2a1cc0d4f36f82f9d41d6246ad6fa",
    "twitter2015/valid.txt": "9dcc7f9df7331de3c9cdf67a3450e041c41c6254b5e43925c576e2dfaaabe2ad",
    "twitter2015/test.txt": "edb2665b89bfe58bca06a2c10b9b31cbfa95456135b6a4cbf55c872e48d9b8f9",
    "twitter2017/train.txt": "801e149e8635b19d66b4ec1212c329be340ada501b35c5fa55455fb6f53633be",
    "twitter2017/valid.txt": "41b5db90cb32059c14c2c3ccd50845fb77f1e3d3e4f7d0c210a61bc507d8a73e",
    "twitter2017/test.txt": "a7d9e172ae85bd3e35276eb2b01ce223321bdc92a47b234e24305d72e7a05243",
}

TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".cfg", ".ini", ".json", ".yaml", ".yml", ""}
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", "runs", "build", "out", "demo_out"}
# Built from pieces so that this file does not match itself.
OUTSIDE = ["..".join(["", "/shared"]), "../" + "../"]


@pytest.mark.parametrize("name", sorted(SPLITS_SHA256))
def test_real_splits_ship_unchanged(name, twitter_data):
    data = (twitter_data / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SPLITS_SHA256[name], f"data/{name} differs from the release"


def _project_text_files(repo_root):
    for top, dirs, files in os.walk(repo_root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        rel_top = os.path.relpath(top, repo_root)
        if rel_top.split(os.sep)[0] == "data" and rel_top != "data":
            continue  # the datasets themselves (tweets may hold any text)
        for name in files:
            path = os.path.join(top, name)
            if os.path.splitext(name)[1] in TEXT_SUFFIXES and os.path.getsize(path) < 2_000_000:
                yield path


def test_nothing_points_outside_the_repository(repo_root):
    hits = []
    for path in _project_text_files(repo_root):
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(lines, 1):
            if any(needle in line for needle in OUTSIDE):
                hits.append(f"{os.path.relpath(path, repo_root)}:{number}: {line.strip()[:100]}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)
