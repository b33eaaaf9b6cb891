"""Benchmark of the ground stage: naive order of work vs the batched driver, side by side in one run.

Modes: ``plain`` = the naive pipeline of the issue (one image at a time: decode, one YOLO call, that
image's crops through CLIP, its phrases through CLIP's full 77-token text tower, no phrase cache);
``naive`` = the same order of work with the driver's cheap text path (truncated context + cache);
``batched`` = the driver (decode thread, batches of images, all crops of a batch through CLIP);
``tensor`` = the driver with ``--input-path tensor`` (DataLoader workers, torchvision decoding, letterbox
and YOLO on batch tensors), added by ``--input-paths ultralytics,tensor``.

    .venv/bin/python tests/bench/bench_ground.py [--images 24] [--repeats 3] [--device cpu]
    .venv/bin/python tests/bench/bench_ground.py --modes batched --input-paths ultralytics,tensor

YOLOv8n and CLIP ViT-B/32 architectures with random weights (the same compute as the real ones),
640x480 images drawn here, 5 noun phrases a tweet (real entity texts and tokens of Twitter-2015 from
data/twitter2015), 10 candidate boxes an image. Each repeat times both modes over the whole stage
(decode, detect, CLIP, select, PNG crops, manifest) into fresh folders; prints medians, the ratio,
whether both gave the same crops and scores, and peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import tempfile
import time
from pathlib import Path

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from comipn_prep.conll import read_conll  # noqa: E402
from comipn_prep.grounding.driver import GroundConfig, Grounder, ground_split  # noqa: E402
from comipn_prep.grounding.nps_input import GroundItem  # noqa: E402
from comipn_prep.grounding.manifest import read_manifest  # noqa: E402
from comipn_prep.grounding.clip_matcher import ClipMatcher  # noqa: E402
from comipn_prep.grounding.tensor_detector import BatchDetector  # noqa: E402


def make_items(n: int, n_phrases: int) -> list[GroundItem]:
    """Real tweets; phrases = distinct token n-grams of each tweet (so the phrase cache only helps
    where tweets really repeat text)."""
    tweets = read_conll(REPO / "data" / "twitter2015" / "train.txt").tweets
    items = []
    for t in tweets:
        words = [w for w in t.tokens if w.isalpha()]
        phrases = list(dict.fromkeys(" ".join(words[k:k + 2]) for k in range(0, len(words), 2)))[:n_phrases]
        if len(phrases) == n_phrases:
            items.append(GroundItem(t.imgid, phrases))
        if len(items) == n:
            break
    return items


def make_images(folder: Path, items, size=(640, 480)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, it in enumerate(items):
        rng = np.random.default_rng(k)
        im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x, y = rng.integers(0, size[0] - 40), rng.integers(0, size[1] - 40)
            draw.rectangle([x, y, x + rng.integers(20, 300), y + rng.integers(20, 250)],
                           fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        im.save(folder / f"{it.imgid}.jpg", quality=90)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--phrases", type=int, default=5)
    ap.add_argument("--max-candidates", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop-batch", type=int, default=16)
    ap.add_argument("--detector-batch", type=int, default=0, help="images per YOLO call (0: auto)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--crop-path", default="auto", choices=["auto", "tensor", "pillow"],
                    help="crops through tensors on the device or through Pillow (auto: tensor on CUDA)")
    ap.add_argument("--io-threads", type=int, default=0, help="decode / PNG threads (0: auto)")
    ap.add_argument("--input-paths", default="ultralytics",
                    help="comma-separated: ultralytics, tensor (each timed in the batched mode, back to back)")
    ap.add_argument("--modes", default="plain,naive,batched", help="comma-separated: plain, naive, batched")
    ap.add_argument("--skip-naive", action="store_true", help="only the batched driver (e.g. on a GPU)")
    args = ap.parse_args()

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench-ground-"))
    items = make_items(args.images, args.phrases)
    make_images(work / "img", items)
    cfg = GroundConfig(detector="yolov8n.yaml", clip_pretrained="none", conf=0.0, device=args.device,
                       max_candidates=args.max_candidates, batch_size=args.batch_size, crop_batch=args.crop_batch,
                       detector_batch=args.detector_batch, threads=args.threads, crop_path=args.crop_path,
                       io_threads=args.io_threads)
    grounder = Grounder.from_config(cfg)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {len(items)} images 640x480, "
          f"{args.phrases} phrases each, {args.max_candidates} candidate boxes, batch {args.batch_size}, "
          f"crop batch {args.crop_batch}, detector batch {grounder.detector.max_batch}, "
          f"{'tensor' if grounder.tensor_crops else 'Pillow'} crop path")
    # Warm-up (first calls allocate and pick kernels); its phrases are distinct from the timed ones' cache.
    warm = [GroundItem(items[0].imgid, ["warm up phrase"])]
    ground_split(grounder, warm, work / "img", work / "warm", "train", progress=False)

    m = grounder.matcher
    plain = Grounder(grounder.detector, ClipMatcher(m.bundle, device=m.device, prompt=m.prompt, crop_batch=10**6,
                                                    truncate_text=False, cache_phrases=False),
                     cfg, grounder.detector_id, grounder.clip_id, grounder.random_weights, grounder.tensor_pre)
    modes = ["batched"] if args.skip_naive else args.modes.split(",")
    input_paths = args.input_paths.split(",")
    tensor = None
    if "tensor" in input_paths:
        d = grounder.detector
        tensor = Grounder(d, m, dataclasses.replace(cfg, input_path="tensor"), grounder.detector_id, grounder.clip_id,
                          grounder.random_weights, grounder.tensor_pre,
                          batch_detector=BatchDetector(d.model, d.conf, d.nms_iou, d.max_candidates, device=d.device,
                                                       max_batch=args.detector_batch))
        ground_split(tensor, warm, work / "img", work / "warm-tensor", "train", progress=False)
        modes.append("tensor")
        if "ultralytics" not in input_paths and "batched" in modes:
            modes.remove("batched")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    # CPU seconds per image (all threads of this process): on a shared machine the wall-clock rate
    # depends on the neighbours' load; this does much less.
    cpu_s: dict[str, list[float]] = {m: [] for m in modes}
    for rep in range(args.repeats):
        for mode in modes:
            grounder.matcher._cache.clear()  # every run pays for its phrases
            out = work / f"{mode}-{rep}"
            t0, c0 = time.perf_counter(), time.process_time()
            runner = {"plain": plain, "tensor": tensor}.get(mode, grounder)
            ground_split(runner, items, work / "img", out, "train", naive=mode not in ("batched", "tensor"),
                         progress=False)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rate = len(items) / (time.perf_counter() - t0)
            cpu = (time.process_time() - c0) / len(items)
            rates[mode].append(rate)
            cpu_s[mode].append(cpu)
            print(f"  repeat {rep} {mode:8s} {rate:6.2f} images/s  ({cpu:.2f} CPU-s per image, all threads)")
    for mode in modes:
        print(f"{mode:8s} median {statistics.median(rates[mode]):.2f} images/s over {args.repeats} runs; "
              f"median {statistics.median(cpu_s[mode]):.2f} CPU-s per image")
    top = "tensor" if "tensor" in modes else "batched"  # compared with every other mode
    b = read_manifest(work / f"{top}-0" / "train" / "manifest.csv") if top in modes else None
    for base in [m for m in modes if m != top]:
        if b is None:
            break
        ratio = statistics.median(rates[top]) / statistics.median(rates[base])
        a = read_manifest(work / f"{base}-0" / "train" / "manifest.csv")
        cols = ["imgid", "crop_file", "x1", "y1", "x2", "y2", "phrase"]
        same = a[cols].equals(b[cols])
        diff = float(np.nanmax(np.abs(a.clip_score.to_numpy() - b.clip_score.to_numpy())))
        print(f"{top} / {base}: {ratio:.2f}x; same crops, boxes and phrases: {same}; "
              f"max |clip score diff| {diff:.2e}")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
