"""Per-batch cost of writing the grounding manifest as it grows: appending a batch's rows (the driver's
way, :class:`ManifestAppender`) vs rewriting the whole file after each batch (the old way), side by side.

    .venv/bin/python tests/bench/bench_manifest.py [--sizes 1000,10000,100000] [--batches 20] [--dir DIR]

Synthetic rows (3 crops an image, 8 images a batch = 24 rows). For each manifest size N, a manifest of N
rows is written first; then each way writes --batches further batches, each timed on its own (fsync
included). Prints the median per-batch milliseconds for each N and the ratio of the largest N to the
smallest (flat = about 1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _offline import REPO  # noqa: F401,E402  (offline env, repo on sys.path)
import pandas as pd  # noqa: E402

from comipn_prep.grounding.manifest import ManifestAppender, read_manifest, rows_to_frame, write_manifest  # noqa: E402


def synthetic_rows(first_image: int, images: int, crops: int = 3) -> list[dict]:
    rows = []
    for i in range(first_image, first_image + images):
        imgid = f"{1000000 + i}"
        for rank in range(crops):
            rows.append({"imgid": imgid, "status": "ok", "crop_file": f"{imgid}_pred_yolo_crop_{rank}.png",
                         "rank": rank, "x1": 10 + rank, "y1": 20, "x2": 300, "y2": 240 - rank,
                         "phrase": "a photo of something", "clip_score": 0.123456 + rank / 7,
                         "det_score": 0.5 / (rank + 1), "image_width": 640, "image_height": 480,
                         "detector": "yolov8n:random", "clip_model": "ViT-B-32:random", "random_weights": True})
    return rows


def time_append(path: Path, start_image: int, batches: int, per_batch: int) -> list[float]:
    m = ManifestAppender(path)
    times = []
    for b in range(batches):
        rows = synthetic_rows(start_image + b * per_batch, per_batch)
        t0 = time.perf_counter()
        m.append(rows)
        times.append(time.perf_counter() - t0)
    m.close()
    return times


def time_rewrite(path: Path, start_image: int, batches: int, per_batch: int) -> list[float]:
    """The old driver's per-batch work: concatenate the batch onto the whole frame, rewrite the file."""
    frame = read_manifest(path)
    times = []
    for b in range(batches):
        rows = synthetic_rows(start_image + b * per_batch, per_batch)
        t0 = time.perf_counter()
        frame = pd.concat([frame, rows_to_frame(rows)], ignore_index=True)
        write_manifest(path, frame)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="manifest rows before the timed batches")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--images-per-batch", type=int, default=8)
    ap.add_argument("--dir", default=None, help="where the manifests go (default: a temp folder)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-manifest-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{args.batches} batches of {args.images_per_batch} images x 3 crops per size; files in {work}")
    medians: dict[str, dict[int, float]] = {"append": {}, "rewrite": {}}
    for n in sizes:
        base = rows_to_frame(synthetic_rows(0, n // 3))
        for way, fn in (("append", time_append), ("rewrite", time_rewrite)):
            path = work / f"{way}-{n}.csv"
            write_manifest(path, base)
            times = fn(path, n // 3, args.batches, args.images_per_batch)
            medians[way][n] = statistics.median(times) * 1000
            assert len(read_manifest(path)) == len(base) + args.batches * args.images_per_batch * 3
            path.unlink()
        print(f"{len(base):>7} rows: append {medians['append'][n]:7.2f} ms/batch   "
              f"rewrite {medians['rewrite'][n]:8.2f} ms/batch   rewrite/append "
              f"{medians['rewrite'][n] / medians['append'][n]:6.1f}x", flush=True)
    lo, hi = sizes[0], sizes[-1]
    for way in ("append", "rewrite"):
        print(f"{way}: {hi} rows / {lo} rows per-batch cost {medians[way][hi] / medians[way][lo]:.2f}x")


if __name__ == "__main__":
    main()
