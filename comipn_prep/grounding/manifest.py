"""The grounding manifest: one CSV row per saved crop and one per image without crops.

Rewritten whole through a temp file + ``os.replace`` after every batch, so a kill never leaves half a
row; crops are written before their rows, so every row names a crop that exists.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..conll import atomic_write_bytes

COLUMNS = ["imgid", "status", "crop_file", "rank", "x1", "y1", "x2", "y2", "phrase", "clip_score",
           "det_score", "image_width", "image_height", "detector", "clip_model", "random_weights"]
STATUSES = ("ok", "no_boxes", "missing", "unreadable", "too_large")
_DTYPES = {"imgid": str, "status": str, "crop_file": str, "phrase": str, "detector": str, "clip_model": str}


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})


def read_manifest(path: Path) -> pd.DataFrame:
    """Read one manifest (imgids stay strings: ``"0123"`` must not become 123)."""
    path = Path(path)
    if not path.is_file():
        return empty_manifest()
    try:
        df = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False, na_values={"clip_score": [""],
                         "det_score": [""], "rank": [""], "x1": [""], "y1": [""], "x2": [""], "y2": [""]})
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable manifest CSV: {err}") from None
    missing = [c for c in ("imgid", "status", "crop_file", "rank") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a grounding manifest (no column {', '.join(missing)})")
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = ""
    return _typed(df[COLUMNS])


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


def rows_to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = math.nan if col in ("clip_score", "det_score") or col in INT_COLUMNS else ""
    return _typed(df[COLUMNS])


def write_manifest(path: Path, df: pd.DataFrame) -> None:
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.6g")
    atomic_write_bytes(Path(path), buf.getvalue().encode("utf-8"))


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Images per status (an image with several crops counts once)."""
    per_image = df.drop_duplicates("imgid")["status"].value_counts()
    return {s: int(per_image.get(s, 0)) for s in STATUSES}
