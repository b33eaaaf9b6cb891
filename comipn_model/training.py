"""Train Co-MIPN, choose the checkpoint on dev F1, score test once on it: the training loop.

The recipe of the spec: AdamW with three parameter groups (:mod:`.optim`), linear warmup then linear
decay, gradient clipping, bf16 autocast on CUDA. Seeded throughout; a stopped run (Ctrl-C, ``kill``,
``--save-steps``) continues from ``last.pt`` to the same result (batch order depends only on (seed,
epoch); the RNG states are restored). Under ``torchrun`` it trains with DistributedDataParallel
(:mod:`.distributed`); only rank 0 writes. Everything that can fail is checked before any model is
loaded (:mod:`.preflight`), and the run folder is written only once training starts.

The other jobs live in their own modules: configuration and presets (:mod:`.train_config`), evaluation
(:mod:`.evaluation`), signals (:mod:`.signals`), tracking (:mod:`.tracking`); the names below are
re-exported for callers of this module.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from comipn_prep.devices import resolve_device
from comipn_prep.folder_lock import holding, lock_name
from comipn_prep.logs import progress_enabled

from . import run_folder as rf
from . import tracking
from .builders import build_model, default_feature_cache, fit_visual_norm, make_collator  # noqa: F401 - re-exported
from .checkpoints import load_weights, model_from_checkpoint
from .config import CoMIPNConfig
from .data import EpochBatches, warn_missing
from .distributed import Dist, device_kind, get_rng_state, init_distributed, seed_everything, set_rng_state
from .evaluation import epoch_row, predict_examples, score_test  # noqa: F401 - re-exported
from .precision import autocast
from .optim import check_param_groups, group_learning_rates, make_optimizer, make_scheduler  # noqa: F401
from .preflight import RunData, check_layout, check_weights, load_run_data
from .prep_record import read_prep_record
from .signals import StopRequests
from .train_config import PRESETS, TrainConfig, apply_preset  # noqa: F401 - re-exported

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "apply_preset", "build_model", "check_param_groups",
           "default_feature_cache", "make_collator", "only_test", "predict_examples", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int | None
    best_dev_f1: float | None
    test: dict | None  # test_report.json's content (rank 0), None when stopped early
    global_step: int
    stopped: bool = False  # True when the run stopped before its end (last.pt holds where)
    signal: int | None = None  # the signal that stopped it (SIGINT / SIGTERM), None otherwise
    epoch: int = 0  # where last.pt stands: epoch (0-based) and batches done in it
    batches_done: int = 0
    steps_per_epoch: int = 0


def _new_partial() -> dict:
    return {"loss_sum": 0.0, "loss_batches": 0, "tweets": 0, "seconds": 0.0, "cpu_seconds": 0.0}


def write_run_files(folder: rf.RunFolder, cfg: TrainConfig, data: RunData) -> None:
    """What the run folder records when training starts (rank 0): the config, with absolute paths.
    Other metadata of the run (e.g. how its data was made) belongs here too."""
    folder.write_json(rf.CONFIG, cfg.to_dict())


def train_step(net, model, batch, optimizer, scheduler, cfg: TrainConfig, device: torch.device) -> float:
    """One optimizer step on one batch; returns the batch's loss."""
    batch = batch.to(device)
    with autocast(device, cfg.amp):
        out = net(batch)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out.loss.detach())


def _run_folder_lock(a: dict) -> list:
    """The run folder's lock, held by the process that writes it: under torchrun only rank 0 (RANK is
    set before the process group is joined)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return []
    return [(Path(a["cfg"].run_dir), lock_name(), "run folder")]


@holding(_run_folder_lock)
def train(cfg: TrainConfig, *, resume: bool = False, force: bool = False,
          stop_after_steps: int | None = None) -> TrainResult:
    """Train, select on dev, score test once.

    ``resume``: continue the run in ``cfg.run_dir`` from its last.pt; ``cfg`` is that run's config
    (see :func:`comipn_model.train_config.resume_config`). ``stop_after_steps`` saves last.pt and returns
    after that many optimizer steps in total (a stand-in for a kill, for tests).
    """
    cfg = cfg.absolute()
    folder = rf.RunFolder(cfg.run_dir)
    dinfo = init_distributed(device_kind(cfg.device))
    device = resolve_device(cfg.device, dinfo.local_rank)

    # -- fail fast: folder, tracker, data, images and weights, before any model is loaded ------------
    folder.check(resume=resume, force=force)
    tracking.check_available(cfg.report_to)
    data = load_run_data(cfg)
    check_weights(cfg, data)
    prep = read_prep_record(data.layout)  # grounding / NP settings, to tag new tweets the same way
    state = folder.load_checkpoint(rf.LAST) if resume else None
    if state is not None and cfg.epochs < state["epoch"]:
        raise ValueError(f"--epochs {cfg.epochs}: the run in {folder.path} has done {state['epoch']} epochs already")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    seed_everything(cfg.seed)
    model = build_model(cfg.model, device)
    # Training's random numbers (dropout) must not depend on how many the model's optional parts drew.
    seed_everything(cfg.seed)
    if dinfo.main:
        warn_missing(data.counts)
    collate = make_collator(model, cfg.model, [data.train, data.dev, data.test], list(data.counts.values()),
                            cfg.feature_cache, device)
    if state is None:  # a resumed run has its statistics in last.pt
        fit_visual_norm(model, collate, data.train)
    batches = EpochBatches(data.train, cfg.batch_size, collate, shuffle=True, seed=cfg.seed,
                           rank=dinfo.rank, world_size=dinfo.world_size, bucket=cfg.bucket)

    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = len(batches)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = make_scheduler(optimizer, total_steps, cfg.warmup_ratio)

    epoch, batches_done, global_step = 0, 0, 0
    best_f1, best_epoch = None, None
    partial = _new_partial()
    rows = folder.read_metrics() if resume else []
    if state is not None:
        load_weights(model, state["model"], folder.file(rf.LAST), "the run's config.json")
        optimizer.load_state_dict(state["optimizer"])
        # A longer run (--epochs) keeps the step count and follows the schedule of the new length.
        scheduler.load_state_dict(state["scheduler"])
        epoch, batches_done, global_step = state["epoch"], state["batches_done"], state["global_step"]
        best_f1, best_epoch = state["best_dev_f1"], state["best_epoch"]
        partial = dict(state["partial"])
        rows = [r for r in rows if r["epoch"] <= epoch]  # epochs after the checkpoint never happened
        set_rng_state(state["rng"], dinfo.rank)
        log.info("resuming %s at epoch %d, batch %d (step %d)", cfg.run_dir, epoch + 1, batches_done,
                 global_step)

    # -- training starts: only now is the run folder written -----------------------------------------
    if dinfo.main:
        folder.prepare(resume=resume, force=force)
        write_run_files(folder, cfg, data)
    dinfo.barrier()

    net = model
    if dinfo.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model.uses_images)

    def save_last(next_epoch: int, done: int, part: dict) -> None:
        if dinfo.main:
            folder.save_checkpoint(rf.LAST, {
                "model": rf.model_state(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": get_rng_state(dinfo),
                "epoch": next_epoch, "batches_done": done, "global_step": global_step,
                "best_dev_f1": best_f1, "best_epoch": best_epoch, "partial": part,
                "model_config": cfg.model.to_dict(), "train_config": cfg.to_dict()})
            folder.write_metrics(rows)
        dinfo.barrier()

    if dinfo.main:
        log.info("training %s: %d train / %d dev / %d test tweets, %d steps per epoch, %d steps, device %s%s",
                 cfg.dataset, len(data.train), len(data.dev), len(data.test), steps_per_epoch, total_steps,
                 device, f", {dinfo.world_size} processes" if dinfo.enabled else "")
    tracker = tracking.make_tracker(cfg.report_to, folder.path, dinfo.main)
    stop = StopRequests()
    stopped = False
    model.train()
    try:
        with stop:
            while epoch < cfg.epochs and global_step < total_steps:
                if dinfo.any(stop.requested, device):
                    stopped = True
                    save_last(epoch, batches_done, partial)
                    break
                start_time, start_cpu = time.perf_counter(), time.process_time()
                # The bar's total is this epoch's share of the (possibly --max-steps capped) run.
                epoch_total = min(steps_per_epoch, batches_done + total_steps - global_step)
                bar = tqdm(batches.epoch(epoch, skip_batches=batches_done), total=epoch_total, initial=batches_done,
                           desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                           disable=not (dinfo.main and progress_enabled()))
                for batch in bar:
                    lrs = group_learning_rates(optimizer)
                    loss = train_step(net, model, batch, optimizer, scheduler, cfg, device)
                    global_step += 1
                    batches_done += 1
                    partial["loss_sum"] += loss
                    partial["loss_batches"] += 1
                    partial["tweets"] += len(batch.word_counts)
                    bar.set_postfix(loss=f"{partial['loss_sum'] / partial['loss_batches']:.3f}")
                    tracker.log_step(global_step, loss, lrs)
                    log.debug("step %d (epoch %d, batch %d): loss %.4f", global_step, epoch + 1, batches_done, loss)
                    if dinfo.any(stop.requested, device) or (stop_after_steps is not None
                                                     and global_step >= stop_after_steps):
                        stopped = True
                        break
                    if global_step >= total_steps:
                        break
                    if cfg.save_steps and global_step % cfg.save_steps == 0 and batches_done < steps_per_epoch:
                        partial_now = {**partial, "seconds": partial["seconds"] + time.perf_counter() - start_time,
                                       "cpu_seconds": partial["cpu_seconds"] + time.process_time() - start_cpu}
                        save_last(epoch, batches_done, partial_now)
                bar.close()
                partial["seconds"] += time.perf_counter() - start_time
                # CPU time of this process: on a shared machine, what the epoch cost apart from waiting.
                partial["cpu_seconds"] = partial.get("cpu_seconds", 0.0) + time.process_time() - start_cpu
                if stopped:
                    # last.pt at this very step: a resume finishes this epoch (and scores dev) as usual.
                    save_last(epoch, batches_done, partial)
                    break
                row = epoch_row(model, cfg, epoch, partial, data.dev, collate, device, dinfo,
                                last=epoch + 1 >= cfg.epochs or global_step >= total_steps)
                rows.append(row)
                tracker.log_epoch(global_step, row)
                if row["dev_f1"] is not None and (best_f1 is None or row["dev_f1"] > best_f1):
                    best_f1, best_epoch = row["dev_f1"], epoch + 1
                    if dinfo.main:
                        folder.save_checkpoint(rf.BEST, {"model": rf.model_state(model),
                                                         "model_config": cfg.model.to_dict(),
                                                         "train_config": cfg.to_dict(), "epoch": best_epoch,
                                                         "dev_f1": best_f1, "prep": prep})
                epoch, batches_done = epoch + 1, 0
                partial = _new_partial()
                save_last(epoch, 0, partial)
                if dinfo.main:
                    folder.plot_curves(rows)
                    log.info("epoch %d: train loss %.4f, dev F1 %s, %.1f s (%.1f tweets/s)", row["epoch"],
                             row["train_loss"], "-" if row["dev_f1"] is None else f"{row['dev_f1']:.4f}",
                             row["seconds"], row["tweets_per_s"])
            if not stopped and dinfo.any(stop.requested, device):
                stopped = True  # training is done; the resumed run scores test
    finally:
        tracker.close()

    if stopped:
        return TrainResult(folder.path, best_epoch, best_f1, None, global_step, stopped=True, signal=stop.signum,
                           epoch=epoch, batches_done=batches_done, steps_per_epoch=steps_per_epoch)
    test = score_test(folder, model, data.test, collate, cfg, device, dinfo)
    dinfo.barrier()
    return TrainResult(folder.path, best_epoch, best_f1, test, global_step, epoch=epoch,
                       steps_per_epoch=steps_per_epoch)


@holding(_run_folder_lock)
def only_test(cfg: TrainConfig, load_path: str | os.PathLike, *, force: bool = False,
              text_model: str | None = None) -> dict:
    """Score a saved checkpoint on test (``--only-test --load-path``); writes into cfg.run_dir. The model is
    the checkpoint's (``text_model``: where its encoder's config and tokenizer are now, if moved)."""
    from .data import attach_images, read_split
    from .preflight import check_clip

    device = resolve_device(cfg.device, 0)
    folder = rf.RunFolder(cfg.run_dir)
    for name in (rf.TEST_REPORT, rf.TEST_PREDICTIONS):
        if folder.file(name).exists() and not force:
            raise FileExistsError(f"{folder.file(name)} exists: pass --force to overwrite it")
    layout = check_layout(cfg.data_root, cfg.dataset)
    tweets = read_split(layout, "test")
    state = rf.load_checkpoint(load_path)
    model_config = CoMIPNConfig.from_dict(state["model_config"])
    if model_config.uses_images:
        from comipn_prep.image_coverage import check_split_images

        check_split_images(layout, "test", [t.imgid for t in tweets], allow_missing=cfg.allow_missing_images)
    test_ex, counts = attach_images(tweets, layout, "test", aux_k=model_config.aux_k,
                                    with_images=model_config.uses_images)
    if model_config.uses_images and counts.any_found:
        check_clip(model_config.clip_model, model_config.clip_pretrained)
    model, model_config, state = model_from_checkpoint(load_path, device, text_model)
    collate = make_collator(model, model_config, [test_ex], [counts], cfg.feature_cache, device)
    run_cfg = TrainConfig(data_root=cfg.data_root, dataset=cfg.dataset, run_dir=cfg.run_dir, model=model_config,
                          eval_batch_size=cfg.eval_batch_size, amp=cfg.amp, device=cfg.device)
    folder.path.mkdir(parents=True, exist_ok=True)
    return score_test(folder, model, test_ex, collate, run_cfg, device, Dist(), checkpoint=Path(load_path),
                      state=state)
