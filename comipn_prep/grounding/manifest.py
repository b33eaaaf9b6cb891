"""The grounding manifest: one CSV row per saved crop and one per image without crops.

A run appends each batch's rows (:class:`ManifestAppender`) instead of rewriting the whole file, so the
cost of a batch does not grow with the manifest. Crash safety: after each append (fsynced) the valid
length of the file is recorded in a sidecar ``<manifest>.committed`` (written atomically); a reader
ignores any bytes past it, and the next run cuts them off, so a kill mid-append never leaves half a
batch. The sidecar goes when the run ends. Crops are written before their rows, so every row names a
crop that exists.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from ..conll import atomic_write_bytes
from ..layout import file_name_problem, imgid_problem, shown

COLUMNS = ["imgid", "status", "crop_file", "rank", "x1", "y1", "x2", "y2", "phrase", "clip_score",
           "det_score", "image_width", "image_height", "detector", "clip_model", "random_weights"]
STATUSES = ("ok", "no_boxes", "missing", "unreadable", "too_large")
# Statuses a resumed run does not trust: the image is tried again (a fixed or re-copied file), its old
# rows replaced, so the manifest's counts say what the files are now.
RECHECKED = ("unreadable",)
_DTYPES = {"imgid": str, "status": str, "crop_file": str, "phrase": str, "detector": str, "clip_model": str}


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})


def committed_path(path: Path) -> Path:
    """The sidecar that holds a manifest's valid length while a run appends to it."""
    path = Path(path)
    return path.with_name(path.name + ".committed")


def committed_length(path: Path) -> int | None:
    """Bytes of ``path`` that hold whole batches, or None when the whole file is valid (no sidecar, or a
    stale one left from before the file was last replaced: it names another inode)."""
    side = committed_path(path)
    try:
        length, inode = (int(v) for v in side.read_text().split())
        if inode != os.stat(path).st_ino:
            return None
    except (OSError, ValueError):
        return None
    return length


def _valid_bytes(path: Path) -> bytes:
    data = Path(path).read_bytes()
    length = committed_length(path)
    return data if length is None else data[:length]


def read_manifest(path: Path) -> pd.DataFrame:
    """Read one manifest (imgids stay strings: ``"0123"`` must not become 123); bytes past the committed
    length of an interrupted run are not read."""
    path = Path(path)
    if not path.is_file():
        return empty_manifest()
    data = _valid_bytes(path)
    if not data.strip():
        return empty_manifest()
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=_DTYPES, keep_default_na=False, na_values={"clip_score": [""],
                         "det_score": [""], "rank": [""], "x1": [""], "y1": [""], "x2": [""], "y2": [""]})
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable manifest CSV: {err}") from None
    missing = [c for c in ("imgid", "status", "crop_file", "rank") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a grounding manifest (no column {', '.join(missing)})")
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = ""
    _check_names(path, df)
    return _typed(df[COLUMNS])


def _check_names(path: Path, df: pd.DataFrame) -> None:
    """Every imgid a plain file stem and every crop name a plain file name: both become paths under
    the image and crop folders (row n is line n + 1 of the file when no field spans lines)."""
    for n, (imgid, crop) in enumerate(zip(df["imgid"], df["crop_file"]), start=1):
        why = imgid_problem(imgid)
        if why is not None:
            raise ValueError(f"{path}: row {n}: imgid {shown(imgid)} {why}; an IMGID must be a plain file stem")
        why = file_name_problem(crop) if crop else None
        if why is not None:
            raise ValueError(f"{path}: row {n}: crop_file {shown(crop)} {why}; a crop name must be a plain "
                             f"file name")


INT_COLUMNS = ("rank", "x1", "y1", "x2", "y2", "image_width", "image_height")


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Integers stay integers with gaps (rows without a crop), scores floats, flags booleans."""
    df = df.copy()
    for col in INT_COLUMNS:
        df[col] = pd.to_numeric(df[col].replace("", None), errors="coerce").astype("Int64")
    for col in ("clip_score", "det_score"):
        df[col] = pd.to_numeric(df[col].replace("", None), errors="coerce").astype("float64")
    df["random_weights"] = df["random_weights"].map(
        lambda v: v if isinstance(v, bool) else str(v).strip().lower() == "true")
    return df


def manifest_paths(split_dir: Path) -> list[Path]:
    """Every manifest of a split folder: the whole-set one and any shards' ones."""
    split_dir = Path(split_dir)
    return sorted(p for p in split_dir.glob("manifest*.csv") if p.is_file())


def read_split_manifests(split_dir: Path) -> pd.DataFrame:
    """All manifests of a split merged (shards included); a later row for an imgid wins over an earlier
    manifest's rows for the same imgid, so a rerun of one image never duplicates it."""
    frames = [read_manifest(p) for p in manifest_paths(split_dir)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_manifest()
    owner: dict[str, int] = {}
    for k, frame in enumerate(frames):
        for imgid in frame["imgid"].unique():
            owner[imgid] = k
    kept = [f[f["imgid"].map(owner) == k] for k, f in enumerate(frames)]
    return pd.concat(kept, ignore_index=True)


def crop_boxes(split_dir: Path) -> dict[str, tuple[int, int, int, int]]:
    """Each saved crop's box in its original image (``x1, y1, x2, y2``), by crop file name, from the split's
    manifests; ``{}`` when the folder has none (crops prepared elsewhere, such as the field's released ones)."""
    df = read_split_manifests(split_dir)
    df = df[df["crop_file"].astype(str) != ""]
    return {Path(str(row.crop_file)).name: (int(row.x1), int(row.y1), int(row.x2), int(row.y2))
            for row in df.itertuples(index=False) if not any(pd.isna(v) for v in (row.x1, row.y1, row.x2, row.y2))}


def rows_to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = math.nan if col in ("clip_score", "det_score") or col in INT_COLUMNS else ""
    return _typed(df[COLUMNS])


def _csv_bytes(df: pd.DataFrame, header: bool) -> bytes:
    return df.to_csv(index=False, header=header, float_format="%.6g").encode("utf-8")


HEADER = _csv_bytes(pd.DataFrame(columns=COLUMNS), header=True)


def write_manifest(path: Path, df: pd.DataFrame) -> None:
    """Replace the whole manifest atomically (temp file + rename)."""
    path = Path(path)
    atomic_write_bytes(path, _csv_bytes(df[COLUMNS], header=True))
    committed_path(path).unlink(missing_ok=True)  # stale anyway (another inode); tidy


class ManifestAppender:
    """Appends batches of rows to one manifest; each append is whole or, after a kill, not there.

    Opening reads the manifest (:attr:`existing`) and repairs what an interrupted run left: bytes past
    the committed length are cut off; a file of another column layout is rewritten once.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.existing = read_manifest(self.path)
        valid = _valid_bytes(self.path) if self.path.is_file() else b""
        if valid and (not valid.startswith(HEADER) or not valid.endswith(b"\n")):
            self._rewrite(self.existing)  # another layout (or a hand-edited file): normalise it once
        elif self.path.is_file() and len(valid) < self.path.stat().st_size:
            os.truncate(self.path, len(valid))  # a torn append of a killed run
        if self.path.is_file():
            self._commit(self.path.stat().st_size)

    def drop(self, imgids: Iterable[str]) -> None:
        """Remove these images' rows (``--force`` redoes them): one atomic rewrite."""
        imgids = set(imgids)
        if not imgids or not self.existing["imgid"].isin(imgids).any():
            return
        self.existing = self.existing[~self.existing["imgid"].isin(imgids)].reset_index(drop=True)
        self._rewrite(self.existing)

    def append(self, rows: Sequence[dict]) -> None:
        """Append one batch's rows: write and fsync them, then move the committed length past them."""
        if not rows:
            return
        if not self.path.is_file():  # a new manifest: committed empty before its first bytes
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            self._commit(0)
        size = self.path.stat().st_size
        data = _csv_bytes(rows_to_frame(rows), header=size == 0)
        with open(self.path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._commit(size + len(data))

    def close(self) -> None:
        """The file is whole again: the sidecar goes."""
        committed_path(self.path).unlink(missing_ok=True)

    def _rewrite(self, df: pd.DataFrame) -> None:
        atomic_write_bytes(self.path, _csv_bytes(df[COLUMNS], header=True))
        self._commit(self.path.stat().st_size)

    def _commit(self, length: int) -> None:
        inode = os.stat(self.path).st_ino
        atomic_write_bytes(committed_path(self.path), f"{length} {inode}\n".encode())


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Images per status (an image with several crops counts once)."""
    per_image = df.drop_duplicates("imgid")["status"].value_counts()
    return {s: int(per_image.get(s, 0)) for s in STATUSES}
