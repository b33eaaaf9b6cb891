"""Tagging and scoring: every example tagged in input order (shared out over DDP ranks), dev scores
after an epoch, and the one test scoring of the chosen checkpoint."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from comipn_prep.logs import progress_enabled

from . import run_folder as rf
from .data import Collator, Example
from .distributed import Dist
from .metrics import overall, report
from .precision import autocast
from .train_config import TrainConfig

log = logging.getLogger(__name__)


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
    show = dist_info.main and len(starts) > 1 and progress_enabled()
    for start in tqdm(starts, desc=desc, leave=False, disable=not show):
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


def epoch_row(model, cfg: TrainConfig, epoch: int, partial: dict, dev_ex, collate, device, dinfo: Dist,
              last: bool) -> dict:
    """metrics.jsonl's row of a finished epoch: train loss and speed, dev P/R/F1 when dev is scored."""
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
               device: torch.device, dinfo: Dist, checkpoint: Path | None = None, state: dict | None = None
               ) -> dict | None:
    """Load the chosen checkpoint (best.pt unless given; ``state``: already loaded into ``model``), tag
    test once, write the report and predictions (rank 0)."""
    from .checkpoints import load_weights

    path = checkpoint or folder.file(rf.BEST)
    if state is None:
        state = rf.load_checkpoint(path)
        load_weights(model, state["model"], path, "this run's config.json")
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
