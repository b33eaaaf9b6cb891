"""Train Co-MIPN, choose the checkpoint on dev F1, score test once on it: the training loop.

:func:`train` is the recipe of docs/training.md, one named step each: :func:`prepare` (every check, then
the network, batches, optimizer and schedule), :func:`resume_from` (``--resume``: weights, optimizer,
schedule, position and RNG states of ``last.pt``), :func:`start` (only now is the run folder written),
:func:`train_epoch`, :func:`end_epoch` (dev scored, :func:`select` keeps ``best.pt``, ``last.pt`` saved),
and :func:`~comipn_model.training.evaluate.score_test` on the selected checkpoint.

Seeded throughout; a stopped run (Ctrl-C, ``kill``, ``--save-steps``) continues from ``last.pt`` to the
same result (batch order depends only on (seed, epoch); the RNG states are restored). Under ``torchrun``
it trains with DistributedDataParallel (:mod:`comipn_model.training.distributed`); only rank 0 writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from comipn_prep.devices import resolve_device
from comipn_prep.folder_lock import holding
from comipn_prep.logs import progress_enabled

from comipn_model.data.batching import Collator, EpochBatches
from comipn_model.data.examples import warn_missing
from comipn_model.data.prep_record import read_prep_record
from comipn_model.network.build import build_model
from comipn_model.network.precision import autocast
from comipn_model.saved import run_folder as rf
from comipn_model.saved.loaded import LoadedModel
from comipn_model.saved.loader import build_network, load_source
from comipn_model.training import tracking
from comipn_model.training.compiled import PAD_MULTIPLE, compile_network
from comipn_model.training.config import TrainConfig
from comipn_model.training.distributed import (Dist, device_kind, get_rng_state, init_distributed, seed_everything,
                                               set_rng_state)
from comipn_model.training.evaluate import epoch_row, run_folder_lock, score_test
from comipn_model.training.optim import group_learning_rates, make_optimizer, make_scheduler
from comipn_model.training.preflight import RunData, check_weights, load_run_data
from comipn_model.training.setup import fill_feature_share, fit_visual_norm, make_collator
from comipn_model.training.signals import StopRequests

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


@dataclass
class Position:
    """Where a run stands: what ``last.pt`` records besides the weights and optimizer."""

    epoch: int = 0  # 0-based epoch in progress
    batches_done: int = 0  # batches of that epoch done
    global_step: int = 0
    best_f1: float | None = None
    best_epoch: int | None = None
    partial: dict = field(default_factory=_new_partial)  # the epoch so far: loss sums, tweets, seconds
    rows: list[dict] = field(default_factory=list)  # metrics.jsonl


@dataclass
class Run:
    """One training run between its steps: what :func:`prepare` built and where the run stands."""

    cfg: TrainConfig
    folder: rf.RunFolder
    dinfo: Dist
    device: torch.device
    data: RunData
    prep: dict  # grounding / NP settings of the data, copied into best.pt
    model: torch.nn.Module
    collate: Collator
    batches: EpochBatches
    optimizer: torch.optim.Optimizer
    scheduler: object
    total_steps: int
    last: LoadedModel | None  # last.pt of a resumed run
    net: torch.nn.Module | None = None  # the model, wrapped in DDP under torchrun
    at: Position = field(default_factory=Position)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    def finished(self) -> bool:
        return self.at.epoch >= self.cfg.epochs or self.at.global_step >= self.total_steps


def write_run_files(folder: rf.RunFolder, cfg: TrainConfig, data: RunData) -> None:
    """What the run folder records when training starts (rank 0): the config, with absolute paths, and
    the fingerprints of the files read (``data.json``)."""
    folder.write_json(rf.CONFIG, cfg.to_dict())
    folder.keep_experiment_file(cfg.config_file)
    folder.write_json(rf.DATA, data.files)


def train_step(net, model, batch, optimizer, scheduler, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """One optimizer step on one batch; returns the batch's loss, a 0-d tensor on the device: it is read
    back only when logged (:class:`LossLog`), so that the host does not wait for the device every step."""
    batch = batch.to(device)
    if cfg.compile and device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()  # a new step for --compile-mode reduce-overhead's graphs
    with autocast(device, cfg.amp):
        out = net(batch)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    # A copy under --compile: CUDA graphs reuse the output's memory at the next replay, and the loss is
    # read some steps later.
    return out.loss.detach().clone() if cfg.compile else out.loss.detach()


# Steps whose losses are read back from the device at once (one wait instead of one a step).
LOG_EVERY = 20


class LossLog:
    """The losses of the steps since the last read, kept on the device; :meth:`flush` reads them in one
    transfer and adds them, in order, to the epoch's sums, the progress bar, the tracker and the log."""

    def __init__(self, run: "Run", partial: dict, tracker, bar):
        self.run, self.partial, self.tracker, self.bar = run, partial, tracker, bar
        self.pending: list[tuple[int, int, torch.Tensor, dict]] = []  # (step, batch, loss, learning rates)

    def add(self, loss: torch.Tensor, lrs: dict) -> None:
        at = self.run.at
        self.pending.append((at.global_step, at.batches_done, loss, lrs))
        if len(self.pending) >= LOG_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        values = torch.stack([loss.float() for _, _, loss, _ in self.pending]).tolist()
        partial, epoch = self.partial, self.run.at.epoch
        for (step, batch, _, lrs), loss in zip(self.pending, values):
            partial["loss_sum"] += loss
            partial["loss_batches"] += 1
            self.tracker.log_step(step, loss, lrs)
            log.debug("step %d (epoch %d, batch %d): loss %.4f", step, epoch + 1, batch, loss)
        self.pending = []
        self.bar.set_postfix(loss=f"{partial['loss_sum'] / partial['loss_batches']:.3f}")


# -- 1. prepare: every check first, then what the run trains with ----------------------------------------
def prepare(cfg: TrainConfig, *, resume: bool = False, force: bool = False) -> Run:
    """Check the folder, tracker, data, images and weights before any model is loaded; then build the
    network (a resumed run's from its ``last.pt``, through the one loader), the batches, the optimizer
    and the schedule. Writes nothing."""
    folder = rf.RunFolder(cfg.run_dir)
    dinfo = init_distributed(device_kind(cfg.device))
    device = resolve_device(cfg.device, dinfo.local_rank)
    folder.check(resume=resume, force=force)
    tracking.check_available(cfg.report_to)
    data = load_run_data(cfg)
    check_weights(cfg, data)
    prep = read_prep_record(data.layout)  # grounding / NP settings, to tag new tweets the same way
    last = load_source(folder.file(rf.LAST)) if resume else None
    if last is not None and cfg.epochs < last.checkpoint["epoch"]:
        raise ValueError(f"--epochs {cfg.epochs}: the run in {folder.path} has done {last.checkpoint['epoch']} "
                         f"epochs already")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    seed_everything(cfg.seed)
    if last is None:
        model = build_model(cfg.model, device)
    else:
        model = build_network(last, device, "the run's config.json")
    # Training's random numbers (dropout) must not depend on how many the model's optional parts drew.
    seed_everything(cfg.seed)
    if dinfo.main:
        warn_missing(data.counts)
    collate = make_collator(model, cfg.model, [data.train, data.dev, data.test], list(data.counts.values()),
                            cfg.feature_cache, device)
    if last is None:  # a resumed run has its statistics in last.pt
        if dinfo.enabled:  # the processes fill the feature cache together, then each reads all of it
            fill_feature_share(model, collate, data.train, dinfo.rank, dinfo.world_size)
            dinfo.barrier()
        fit_visual_norm(model, collate, data.train)
    # A compiled step gets a few batch shapes only (dev and test are tagged by the eager model).
    train_collate = collate.padded(PAD_MULTIPLE) if cfg.compile else collate
    batches = EpochBatches(data.train, cfg.batch_size, train_collate, shuffle=True, seed=cfg.seed,
                           rank=dinfo.rank, world_size=dinfo.world_size, bucket=cfg.bucket)
    optimizer = make_optimizer(model, cfg)
    total_steps = cfg.epochs * len(batches)
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = make_scheduler(optimizer, total_steps, cfg.warmup_ratio)
    return Run(cfg, folder, dinfo, device, data, prep, model, collate, batches, optimizer, scheduler, total_steps,
               last)


# -- 2. resume: where last.pt left the run ---------------------------------------------------------------
def resume_from(run: Run, last: LoadedModel) -> None:
    """Optimizer, schedule, position, metrics rows and RNG states of ``last.pt`` (its weights are in the
    model already)."""
    state = last.checkpoint
    run.optimizer.load_state_dict(state["optimizer"])
    # A longer run (--epochs) keeps the step count and follows the schedule of the new length.
    run.scheduler.load_state_dict(state["scheduler"])
    epoch = state["epoch"]
    run.at = Position(epoch=epoch, batches_done=state["batches_done"], global_step=state["global_step"],
                      best_f1=state["best_dev_f1"], best_epoch=state["best_epoch"], partial=dict(state["partial"]),
                      # epochs after the checkpoint never happened
                      rows=[r for r in run.folder.read_metrics() if r["epoch"] <= epoch])
    set_rng_state(state["rng"], run.dinfo.rank)
    log.info("resuming %s at epoch %d, batch %d (step %d)", run.cfg.run_dir, epoch + 1, run.at.batches_done,
             run.at.global_step)


# -- 3. start: the run folder is written only now ----------------------------------------------------------
def start(run: Run, *, resume: bool, force: bool) -> None:
    """Prepare the run folder and write its config (rank 0), wrap the model in DDP under torchrun."""
    if run.dinfo.main:
        run.folder.prepare(resume=resume, force=force)
        write_run_files(run.folder, run.cfg, run.data)
    run.dinfo.barrier()
    run.net = run.model
    if run.dinfo.enabled:
        run.net = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[run.device.index] if run.device.type == "cuda" else None,
            find_unused_parameters=run.cfg.model.uses_images)
    if run.cfg.compile:
        run.net = compile_network(run.net, run.cfg.compile_mode)
    if run.dinfo.main:
        log.info("training %s: %d train / %d dev / %d test tweets, %d steps per epoch, %d steps, device %s%s",
                 run.cfg.dataset, len(run.data.train), len(run.data.dev), len(run.data.test), run.steps_per_epoch,
                 run.total_steps, run.device, f", {run.dinfo.world_size} processes" if run.dinfo.enabled else "")


def save_last(run: Run, partial: dict | None = None) -> None:
    """``last.pt`` at the run's position (``partial``: the epoch so far, if not ``run.at.partial``), and
    metrics.jsonl (rank 0)."""
    at = run.at
    if run.dinfo.main:
        run.folder.save_checkpoint(rf.LAST, {
            "model": rf.model_state(run.model), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "rng": get_rng_state(run.dinfo),
            "epoch": at.epoch, "batches_done": at.batches_done, "global_step": at.global_step,
            "best_dev_f1": at.best_f1, "best_epoch": at.best_epoch,
            "partial": at.partial if partial is None else partial,
            "model_config": run.cfg.model.to_dict(), "train_config": run.cfg.to_dict()})
        run.folder.write_metrics(at.rows)
    run.dinfo.barrier()


# -- 4. one epoch ------------------------------------------------------------------------------------------
def train_epoch(run: Run, stop: StopRequests, tracker, stop_after_steps: int | None = None) -> bool:
    """Train from ``run.at`` to the end of the epoch (or of ``--max-steps``); ``--save-steps`` saves
    ``last.pt`` on the way. Returns True when a stop (signal, ``stop_after_steps``) cut the epoch short."""
    cfg, at, dinfo = run.cfg, run.at, run.dinfo
    start_time, start_cpu = time.perf_counter(), time.process_time()
    # The bar's total is this epoch's share of the (possibly --max-steps capped) run.
    epoch_total = min(run.steps_per_epoch, at.batches_done + run.total_steps - at.global_step)
    bar = tqdm(run.batches.epoch(at.epoch, skip_batches=at.batches_done), total=epoch_total, initial=at.batches_done,
               desc=f"epoch {at.epoch + 1}/{cfg.epochs}", leave=False, disable=not (dinfo.main and progress_enabled()))
    stopped = False
    partial = at.partial
    losses = LossLog(run, partial, tracker, bar)
    for batch in bar:
        lrs = group_learning_rates(run.optimizer)
        loss = train_step(run.net, run.model, batch, run.optimizer, run.scheduler, cfg, run.device)
        at.global_step += 1
        at.batches_done += 1
        partial["tweets"] += len(batch.word_counts)
        losses.add(loss, lrs)
        if dinfo.any(stop.requested, run.device) or (stop_after_steps is not None
                                                     and at.global_step >= stop_after_steps):
            stopped = True
            break
        if at.global_step >= run.total_steps:
            break
        if cfg.save_steps and at.global_step % cfg.save_steps == 0 and at.batches_done < run.steps_per_epoch:
            losses.flush()
            save_last(run, {**partial, "seconds": partial["seconds"] + time.perf_counter() - start_time,
                            "cpu_seconds": partial["cpu_seconds"] + time.process_time() - start_cpu})
    losses.flush()
    bar.close()
    partial["seconds"] += time.perf_counter() - start_time
    # CPU time of this process: on a shared machine, what the epoch cost apart from waiting.
    partial["cpu_seconds"] = partial.get("cpu_seconds", 0.0) + time.process_time() - start_cpu
    return stopped


# -- 5. select: dev F1 picks best.pt -----------------------------------------------------------------------
def select(run: Run, row: dict) -> bool:
    """Keep this epoch's weights as ``best.pt`` when its dev F1 beats every earlier epoch's; returns
    whether it did."""
    at = run.at
    if row["dev_f1"] is None or (at.best_f1 is not None and row["dev_f1"] <= at.best_f1):
        return False
    at.best_f1, at.best_epoch = row["dev_f1"], at.epoch + 1
    if run.dinfo.main:
        run.folder.save_checkpoint(rf.BEST, {"model": rf.model_state(run.model), "model_config": run.cfg.model.to_dict(),
                                             "train_config": run.cfg.to_dict(), "epoch": at.best_epoch,
                                             "dev_f1": at.best_f1, "prep": run.prep})
    return True


def end_epoch(run: Run, tracker) -> None:
    """After a whole epoch: score dev (every epoch, or the last only), select, save ``last.pt`` at the
    next epoch's start, draw the curves."""
    at = run.at
    row = epoch_row(run.model, run.cfg, at.epoch, at.partial, run.data.dev, run.collate, run.device, run.dinfo,
                    last=at.epoch + 1 >= run.cfg.epochs or at.global_step >= run.total_steps)
    at.rows.append(row)
    tracker.log_epoch(at.global_step, row)
    select(run, row)
    at.epoch, at.batches_done, at.partial = at.epoch + 1, 0, _new_partial()
    save_last(run)
    if run.dinfo.main:
        run.folder.plot_curves(at.rows)
        log.info("epoch %d: train loss %.4f, dev F1 %s, %.1f s (%.1f tweets/s)", row["epoch"], row["train_loss"],
                 "-" if row["dev_f1"] is None else f"{row['dev_f1']:.4f}", row["seconds"], row["tweets_per_s"])


@holding(run_folder_lock)
def train(cfg: TrainConfig, *, resume: bool = False, force: bool = False,
          stop_after_steps: int | None = None) -> TrainResult:
    """Train, select on dev, score test once.

    ``resume``: continue the run in ``cfg.run_dir`` from its last.pt; ``cfg`` is that run's config
    (see :func:`comipn_model.training.config.resume_config`). ``stop_after_steps`` saves last.pt and returns
    after that many optimizer steps in total (a stand-in for a kill, for tests).
    """
    run = prepare(cfg.absolute(), resume=resume, force=force)
    if run.last is not None:
        resume_from(run, run.last)
        run.last = None  # its tensors are in the model and optimizer now
    start(run, resume=resume, force=force)
    tracker = tracking.make_tracker(run.cfg.report_to, run.folder.path, run.dinfo.main)
    stop = StopRequests()
    stopped = False
    run.model.train()
    try:
        with stop:
            while not run.finished():
                if run.dinfo.any(stop.requested, run.device):
                    stopped = True
                    save_last(run)
                    break
                if train_epoch(run, stop, tracker, stop_after_steps):
                    stopped = True
                    # last.pt at this very step: a resume finishes this epoch (and scores dev) as usual.
                    save_last(run)
                    break
                end_epoch(run, tracker)
            if not stopped and run.dinfo.any(stop.requested, run.device):
                stopped = True  # training is done; the resumed run scores test
    finally:
        tracker.close()

    at = run.at
    if stopped:
        return TrainResult(run.folder.path, at.best_epoch, at.best_f1, None, at.global_step, stopped=True,
                           signal=stop.signum, epoch=at.epoch, batches_done=at.batches_done,
                           steps_per_epoch=run.steps_per_epoch)
    # -- 6. score test once, on the selected checkpoint (loaded afresh: the training state is let go) -------
    steps_per_epoch = run.steps_per_epoch
    run.model = run.net = run.optimizer = run.scheduler = None
    test = score_test(run.folder, run.data.test, run.collate, run.cfg, run.device, run.dinfo,
                      files=run.data.files)
    run.dinfo.barrier()
    return TrainResult(run.folder.path, at.best_epoch, at.best_f1, test, at.global_step, epoch=at.epoch,
                       steps_per_epoch=steps_per_epoch)
