"""Train Co-MIPN, choose the checkpoint on dev F1, score test once on it.

The recipe of the spec: AdamW with three parameter groups (text encoder / new modules / CRF), linear
warmup then linear decay, gradient clipping, bf16 autocast on CUDA. Seeded throughout; a killed run
continues from ``last.pt`` to the same result (batch order depends only on (seed, epoch); the RNG states
are restored). Under ``torchrun`` it trains with DistributedDataParallel; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from comipn_prep.layout import DatasetLayout

from . import run_folder as rf
from .batch import WordBatcher
from .config import CoMIPNConfig, checked_fields
from .data import Collator, EpochBatches, Example, ImageCounts, load_split, make_visual_fn, warn_missing
from .metrics import overall, report

log = logging.getLogger(__name__)

PRESETS: dict[str, dict] = {
    # The paper's recipe at full scale (a GPU run).
    "paper": {"epochs": 30, "batch_size": 8, "lr": 3e-5, "new_lr": 1e-3, "crf_lr": 5e-2, "warmup_ratio": 0.01,
              "weight_decay": 0.01, "seed": 1234, "bucket": False,
              "model": {"text_model": "bert-base-uncased", "clip_model": "ViT-B-32", "clip_pretrained": "openai",
                        "max_seq": 128}},
    # A few epochs of a small encoder on a CPU (text_model: pass --text-model MiniLM's folder).
    "cpu-small": {"epochs": 4, "batch_size": 16, "lr": 5e-5, "new_lr": 1e-3, "crf_lr": 5e-2,
                  "warmup_ratio": 0.1, "weight_decay": 0.01, "seed": 1234, "bucket": True,
                  "model": {"max_seq": 128}},
}


@dataclass
class TrainConfig:
    """Everything a run needs; saved whole as the run folder's config.json."""

    data_root: str
    dataset: str
    run_dir: str
    model: CoMIPNConfig = field(default_factory=CoMIPNConfig)
    epochs: int = 30
    batch_size: int = 8
    eval_batch_size: int = 32
    lr: float = 3e-5  # text encoder
    new_lr: float = 1e-3  # new modules (prompts, matching, fusion, contrastive, emissions)
    crf_lr: float = 5e-2
    weight_decay: float = 0.01
    warmup_ratio: float = 0.01
    grad_clip: float = 1.0
    seed: int = 1234
    sample_ratio: float = 1.0  # share of the train split used
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast when on CUDA
    max_steps: int | None = None  # cap on optimizer steps (the schedule spans the capped run)
    eval_every_epoch: bool = True  # False: dev scored after the last epoch only
    bucket: bool = True  # length-bucketed train batches (seeded; much less padding)
    feature_cache: str | None = None  # folder of cached visual features
    preset: str | None = None

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = CoMIPNConfig.from_dict(self.model)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch size must be at least 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup ratio must be in [0, 1), got {self.warmup_ratio}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**checked_fields(cls, data))


def apply_preset(name: str | None, train: dict, model: dict) -> tuple[dict, dict]:
    """Preset values under the explicitly given ones (``train`` / ``model``: only options the user set)."""
    if name is None:
        return train, model
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    preset = dict(PRESETS[name])
    preset_model = preset.pop("model", {})
    return {**preset, **train, "preset": name}, {**preset_model, **model}


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int | None
    best_dev_f1: float | None
    test: dict | None  # test_report.json's content (rank 0), None when stopped early
    global_step: int
    stopped: bool = False  # True when stop_after_steps cut the run (a simulated kill)


# -- distributed helpers ---------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device_kind: str) -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but no CUDA device is available")
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


# -- optimizer and schedule ------------------------------------------------------------------------
def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the model's three groups; every trainable parameter exactly once (asserted: a known
    defect of the field's code left new layers out of the optimizer)."""
    groups = model.param_groups()
    lrs = {"text_encoder": cfg.lr, "new": cfg.new_lr, "crf": cfg.crf_lr}
    unknown = set(groups) - set(lrs)
    if unknown:
        raise ValueError(f"unknown parameter groups from the model: {sorted(unknown)}")
    check_param_groups(model, groups)
    param_groups = []
    for name in ("text_encoder", "new", "crf"):
        params = list(groups.get(name, []))
        if not params:
            continue
        # No weight decay on biases and LayerNorm weights (1-d), the usual BERT practice.
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        for ps, wd in ((decay, cfg.weight_decay), (no_decay, 0.0)):
            if ps:
                param_groups.append({"params": ps, "lr": lrs[name], "weight_decay": wd, "name": name})
    # The fused kernel updates all tensors in one pass: the step of a MiniLM-size model takes about
    # two thirds of the time of the default on a CPU (and it is the fast path on CUDA too).
    return torch.optim.AdamW(param_groups, fused=_fused_ok(model))


def _fused_ok(model: torch.nn.Module) -> bool:
    return all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in model.parameters())


def check_param_groups(model: torch.nn.Module, groups: dict[str, Sequence[torch.nn.Parameter]]) -> None:
    seen: dict[int, str] = {}
    for name, params in groups.items():
        for p in params:
            if id(p) in seen:
                raise AssertionError(f"a parameter is in both {seen[id(p)]!r} and {name!r}")
            seen[id(p)] = name
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise AssertionError(f"trainable parameters missing from the optimizer: {missing[:10]}")
    frozen = [name for name, params in groups.items() for p in params if not p.requires_grad]
    if frozen:
        raise AssertionError(f"frozen parameters were put in the optimizer (groups {sorted(set(frozen))})")


def make_scheduler(optimizer, total_steps: int, warmup_ratio: float):
    from transformers import get_linear_schedule_with_warmup

    warmup = int(math.ceil(warmup_ratio * total_steps))
    return get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


# -- model and data ---------------------------------------------------------------------------------
def build_model(model_config: CoMIPNConfig, device: torch.device):
    from .model import CoMIPN

    return CoMIPN(model_config).to(device)


def default_feature_cache() -> Path:
    return Path(os.environ.get("COMIPN_FEATURE_CACHE", Path.home() / ".cache" / "comipn" / "features"))


def make_collator(model, model_config: CoMIPNConfig, example_sets: Sequence[Sequence[Example]],
                  counts: Sequence[ImageCounts], feature_cache: str | None, device: torch.device) -> Collator:
    """The batch maker; builds the (frozen) vision tower only when some image is on disk."""
    batcher = WordBatcher(model.tokenizer, model_config.labels, model_config.max_seq)
    if not model_config.uses_images or not any(c.any_found for c in counts):
        if model_config.uses_images:
            log.warning("no image or crop of this dataset is on disk: every image is masked")
        return Collator(batcher, None)
    from .vision import FeatureCache, VisionTower

    tower = VisionTower(model_config.clip_model, model_config.clip_pretrained, device=str(device))
    cache = FeatureCache(Path(feature_cache) if feature_cache else default_feature_cache(), tower)
    return Collator(batcher, make_visual_fn(cache, model_config.num_images))


def autocast(device: torch.device, amp: bool | None):
    use = device.type == "cuda" if amp is None else amp
    if use and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if use and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_examples(model, examples: Sequence[Example], collate: Collator, batch_size: int,
                     device: torch.device, amp: bool | None = None, dist_info: Dist | None = None,
                     desc: str = "predict") -> list[list[str]]:
    """Tags for every example, in input order. Batches are length-sorted (less padding); under DDP
    each rank tags its share and the shares are gathered on every rank."""
    dist_info = dist_info or Dist()
    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].words))
    mine = order[dist_info.rank::dist_info.world_size]
    results: dict[int, list[str]] = {}
    starts = range(0, len(mine), batch_size)
    for start in tqdm(starts, desc=desc, leave=False, disable=not dist_info.main or len(starts) < 2):
        ids = mine[start:start + batch_size]
        batch = collate([examples[i] for i in ids]).to(device)
        with autocast(device, amp):
            tags = model.decode(batch)
        results.update(zip(ids, tags))
    if dist_info.enabled:
        gathered: list[dict | None] = [None] * dist_info.world_size
        dist.all_gather_object(gathered, results)
        results = {k: v for part in gathered for k, v in part.items()}
    model.train(was_training)
    return [results[i] for i in range(len(examples))]


def model_state(model) -> dict:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


# -- the run -------------------------------------------------------------------------------------
def train(cfg: TrainConfig, *, resume: bool = False, force: bool = False,
          stop_after_steps: int | None = None) -> TrainResult:
    """Train, select on dev, score test once. ``stop_after_steps`` saves last.pt and returns after that
    many optimizer steps in total (a stand-in for a kill, for resume tests)."""
    folder = rf.RunFolder(cfg.run_dir)
    if resume:
        saved = folder.read_json(rf.CONFIG) if folder.file(rf.CONFIG).is_file() else None
        if saved is None:
            raise FileNotFoundError(f"{folder.file(rf.CONFIG)}: nothing to resume")
        # The saved config rules a resumed run (same data, recipe and seed), except where it runs.
        device_name, run_dir = cfg.device, cfg.run_dir
        cfg = TrainConfig.from_dict(saved)
        cfg.device, cfg.run_dir = device_name, run_dir
    device_kind = "cuda" if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()) \
        else "cpu"
    dinfo = init_distributed(device_kind)
    device = resolve_device(cfg.device, dinfo.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)

    if dinfo.main:
        folder.prepare(resume=resume, force=force)
        if not resume:
            folder.write_json(rf.CONFIG, cfg.to_dict())
    dinfo.barrier()

    seed_everything(cfg.seed)
    model = build_model(cfg.model, device)
    # Training's random numbers (dropout) must not depend on how many the model's optional parts drew.
    seed_everything(cfg.seed)
    layout = DatasetLayout(Path(cfg.data_root), cfg.dataset)
    with_images = cfg.model.uses_images
    train_ex, train_counts = load_split(layout, "train", aux_k=cfg.model.aux_k, with_images=with_images,
                                        sample_ratio=cfg.sample_ratio, seed=cfg.seed, warn=False)
    dev_ex, dev_counts = load_split(layout, "valid", aux_k=cfg.model.aux_k, with_images=with_images, warn=False)
    test_ex, test_counts = load_split(layout, "test", aux_k=cfg.model.aux_k, with_images=with_images, warn=False)
    if dinfo.main:
        warn_missing({"train": train_counts, "valid": dev_counts, "test": test_counts})
    collate = make_collator(model, cfg.model, [train_ex, dev_ex, test_ex],
                            [train_counts, dev_counts, test_counts], cfg.feature_cache, device)
    batches = EpochBatches(train_ex, cfg.batch_size, collate, shuffle=True, seed=cfg.seed,
                           rank=dinfo.rank, world_size=dinfo.world_size, bucket=cfg.bucket)

    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = len(batches)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = make_scheduler(optimizer, total_steps, cfg.warmup_ratio)

    epoch, batches_done, global_step = 0, 0, 0
    best_f1, best_epoch = None, None
    partial = {"loss_sum": 0.0, "loss_batches": 0, "tweets": 0, "seconds": 0.0, "cpu_seconds": 0.0}
    rows = folder.read_metrics() if resume else []
    if resume:
        state = folder.load_checkpoint(rf.LAST)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, batches_done, global_step = state["epoch"], state["batches_done"], state["global_step"]
        best_f1, best_epoch = state["best_dev_f1"], state["best_epoch"]
        partial = dict(state["partial"])
        rows = [r for r in rows if r["epoch"] <= epoch]  # epochs after the checkpoint never happened
        set_rng_state(state["rng"], dinfo.rank)
        log.info("resuming %s at epoch %d, batch %d (step %d)", cfg.run_dir, epoch + 1, batches_done,
                 global_step)

    net = model
    if dinfo.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model.uses_images)

    def save_last(next_epoch: int, done: int, part: dict) -> None:
        if dinfo.main:
            folder.save_checkpoint(rf.LAST, {
                "model": model_state(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": get_rng_state(dinfo),
                "epoch": next_epoch, "batches_done": done, "global_step": global_step,
                "best_dev_f1": best_f1, "best_epoch": best_epoch, "partial": part,
                "model_config": cfg.model.to_dict(), "train_config": cfg.to_dict()})
            folder.write_metrics(rows)
        dinfo.barrier()

    stopped = False
    if dinfo.main:
        log.info("training %s: %d train / %d dev / %d test tweets, %d steps per epoch, %d steps, device %s%s",
                 cfg.dataset, len(train_ex), len(dev_ex), len(test_ex), steps_per_epoch, total_steps, device,
                 f", {dinfo.world_size} processes" if dinfo.enabled else "")
    model.train()
    while epoch < cfg.epochs and global_step < total_steps and not stopped:
        start_time, start_cpu = time.perf_counter(), time.process_time()
        bar = tqdm(batches.epoch(epoch, skip_batches=batches_done), total=steps_per_epoch, initial=batches_done,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not dinfo.main, leave=False)
        for batch in bar:
            batch = batch.to(device)
            with autocast(device, cfg.amp):
                out = net(batch)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            batches_done += 1
            partial["loss_sum"] += float(out.loss.detach())
            partial["loss_batches"] += 1
            partial["tweets"] += len(batch.word_counts)
            bar.set_postfix(loss=f"{partial['loss_sum'] / partial['loss_batches']:.3f}")
            if stop_after_steps is not None and global_step >= stop_after_steps:
                stopped = True
                break
            if global_step >= total_steps:
                break
        bar.close()
        partial["seconds"] += time.perf_counter() - start_time
        # CPU time of this process: on a shared machine, what the epoch cost apart from waiting.
        partial["cpu_seconds"] = partial.get("cpu_seconds", 0.0) + time.process_time() - start_cpu
        if stopped and batches_done < steps_per_epoch:
            save_last(epoch, batches_done, partial)
            break
        row = finish_epoch(model, cfg, epoch, partial, dev_ex, collate, device, dinfo,
                           last=epoch + 1 >= cfg.epochs or global_step >= total_steps)
        rows.append(row)
        if row["dev_f1"] is not None and (best_f1 is None or row["dev_f1"] > best_f1):
            best_f1, best_epoch = row["dev_f1"], epoch + 1
            if dinfo.main:
                folder.save_checkpoint(rf.BEST, {"model": model_state(model), "model_config": cfg.model.to_dict(),
                                                 "train_config": cfg.to_dict(), "epoch": best_epoch,
                                                 "dev_f1": best_f1})
        epoch, batches_done = epoch + 1, 0
        partial = {"loss_sum": 0.0, "loss_batches": 0, "tweets": 0, "seconds": 0.0, "cpu_seconds": 0.0}
        save_last(epoch, 0, partial)
        if dinfo.main:
            folder.plot_curves(rows)
            log.info("epoch %d: train loss %.4f, dev F1 %s, %.1f s (%.1f tweets/s)", row["epoch"],
                     row["train_loss"], "-" if row["dev_f1"] is None else f"{row['dev_f1']:.4f}",
                     row["seconds"], row["tweets_per_s"])

    if stopped:
        return TrainResult(folder.path, best_epoch, best_f1, None, global_step, stopped=True)
    test = score_test(folder, model, test_ex, collate, cfg, device, dinfo)
    if dinfo.enabled:
        dist.barrier()
    return TrainResult(folder.path, best_epoch, best_f1, test, global_step)


def finish_epoch(model, cfg: TrainConfig, epoch: int, partial: dict, dev_ex, collate, device, dinfo: Dist,
                 last: bool) -> dict:
    loss_sum, loss_batches = partial["loss_sum"], partial["loss_batches"]
    if dinfo.enabled:
        # The mean over all ranks' batches: what one process with the whole batch would log.
        totals = torch.tensor([loss_sum, float(loss_batches)], dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        loss_sum, loss_batches = float(totals[0]), int(totals[1])
    row = {"epoch": epoch + 1,
           "train_loss": loss_sum / max(loss_batches, 1),
           "seconds": round(partial["seconds"], 3),
           "cpu_seconds": round(partial.get("cpu_seconds", 0.0), 3),
           # Under DDP each rank trains on its share: tweets/s counts all ranks.
           "tweets_per_s": round(partial["tweets"] * dinfo.world_size / max(partial["seconds"], 1e-9), 2),
           "dev_precision": None, "dev_recall": None, "dev_f1": None}
    if cfg.eval_every_epoch or last:
        start = time.perf_counter()
        pred = predict_examples(model, dev_ex, collate, cfg.eval_batch_size, device, cfg.amp, dinfo, desc="dev")
        scores = overall([ex.labels for ex in dev_ex], pred)
        row.update(dev_precision=scores.precision, dev_recall=scores.recall, dev_f1=scores.f1,
                   dev_seconds=round(time.perf_counter() - start, 3))
    return row


def score_test(folder: rf.RunFolder, model, test_ex: Sequence[Example], collate: Collator, cfg: TrainConfig,
               device: torch.device, dinfo: Dist, checkpoint: Path | None = None) -> dict | None:
    """Load the chosen checkpoint (best.pt unless given), tag test once, write the report and
    predictions (rank 0)."""
    path = checkpoint or folder.file(rf.BEST)
    state = rf.load_checkpoint(path)
    model.load_state_dict(state["model"])
    pred = predict_examples(model, test_ex, collate, cfg.eval_batch_size, device, cfg.amp, dinfo, desc="test")
    if not dinfo.main:
        return None
    result = report([ex.labels for ex in test_ex], pred)
    result.update(epoch=state.get("epoch"), dev_f1=state.get("dev_f1"), checkpoint=str(path),
                  dataset=cfg.dataset, tweets=len(test_ex))
    folder.write_json(rf.TEST_REPORT, result)
    folder.write_predictions([ex.tweet for ex in test_ex], pred)
    log.info("test (epoch %s checkpoint): P %.4f R %.4f F1 %.4f", result["epoch"],
             result["overall"]["precision"], result["overall"]["recall"], result["overall"]["f1"])
    return result


def only_test(cfg: TrainConfig, load_path: str | os.PathLike, *, force: bool = False) -> dict:
    """Score a saved checkpoint on test (``--only-test --load-path``); writes into cfg.run_dir."""
    state = rf.load_checkpoint(load_path)
    model_config = CoMIPNConfig.from_dict(state["model_config"])
    # Weights come from the checkpoint: build the encoder from its config only (no second load).
    model_config.random_init = True
    if cfg.model.text_model != CoMIPNConfig().text_model:
        model_config.text_model = cfg.model.text_model
    device = resolve_device(cfg.device)
    folder = rf.RunFolder(cfg.run_dir)
    for name in (rf.TEST_REPORT, rf.TEST_PREDICTIONS):
        if folder.file(name).exists() and not force:
            raise FileExistsError(f"{folder.file(name)} exists: pass --force to overwrite it")
    folder.path.mkdir(parents=True, exist_ok=True)
    model = build_model(model_config, device)
    layout = DatasetLayout(Path(cfg.data_root), cfg.dataset)
    test_ex, counts = load_split(layout, "test", aux_k=model_config.aux_k, with_images=model_config.uses_images)
    collate = make_collator(model, model_config, [test_ex], [counts], cfg.feature_cache, device)
    run_cfg = TrainConfig(data_root=cfg.data_root, dataset=cfg.dataset, run_dir=cfg.run_dir, model=model_config,
                          eval_batch_size=cfg.eval_batch_size, amp=cfg.amp, device=cfg.device)
    return score_test(folder, model, test_ex, collate, run_cfg, device, Dist(), checkpoint=Path(load_path))


def get_rng_state(dinfo: Dist) -> dict:
    # Every rank starts from the same seed and draws the same number of numbers, so rank 0's state
    # is every rank's state; a resumed run restores it on each rank.
    return rf.rng_state()


def set_rng_state(state: dict, rank: int = 0) -> None:
    rf.set_rng_state(state)
