"""Tagging and scoring: every example tagged in input order (shared out over DDP ranks), dev scores
after an epoch, the one test scoring of the chosen checkpoint, and ``--only-test``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from comipn_prep.devices import resolve_device
from comipn_prep.fingerprints import fingerprint
from comipn_prep.folder_lock import holding, lock_name
from comipn_prep.image_coverage import check_split_images
from comipn_prep.logs import progress_enabled

from comipn_model.data.batching import Collator
from comipn_model.data.examples import Example, attach_images, read_split
from comipn_model.network.precision import autocast
from comipn_model.saved import run_folder as rf
from comipn_model.saved.loader import load_model, load_source
from comipn_model.training.config import TrainConfig
from comipn_model.training.distributed import Dist
from comipn_model.training.metrics import overall, report
from comipn_model.training.preflight import check_clip, check_layout
from comipn_model.training.setup import make_collator

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


def score_test(folder: rf.RunFolder, test_ex: Sequence[Example], collate: Collator, cfg: TrainConfig,
               device: torch.device, dinfo: Dist, checkpoint: Path | None = None,
               loaded: tuple | None = None, files: dict | None = None) -> dict | None:
    """Tag test once with the chosen checkpoint (best.pt unless given), write the report and predictions
    (rank 0). The model comes from the one loader (:func:`comipn_model.saved.loader.load_model`);
    ``loaded``: its ``(model, LoadedModel)`` when the caller has loaded it already. ``files``: the
    fingerprints of the data read (:func:`comipn_prep.fingerprints.fingerprint`), kept in the report as
    ``data`` so that two reports can be told to be of the same test split."""
    path = checkpoint or folder.file(rf.BEST)
    model, source = loaded or load_model(path, device)
    state = source.checkpoint or {}
    pred = predict_examples(model, test_ex, collate, cfg.eval_batch_size, device, cfg.amp, dinfo, desc="test")
    if not dinfo.main:
        return None
    result = report([ex.labels for ex in test_ex], pred)
    result.update(epoch=state.get("epoch"), dev_f1=state.get("dev_f1"), checkpoint=str(path),
                  dataset=cfg.dataset, tweets=len(test_ex), data=files)
    folder.write_json(rf.TEST_REPORT, result)
    folder.write_predictions([ex.tweet for ex in test_ex], pred)
    log.info("test (epoch %s checkpoint): P %.4f R %.4f F1 %.4f", result["epoch"],
             result["overall"]["precision"], result["overall"]["recall"], result["overall"]["f1"])
    return result


def run_folder_lock(a: dict) -> list:
    """The run folder's lock (:func:`comipn_prep.folder_lock.holding`), held by the process that writes
    it: under torchrun only rank 0 (RANK is set before the process group is joined)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return []
    return [(Path(a["cfg"].run_dir), lock_name(), "run folder")]


@holding(run_folder_lock)
def only_test(cfg: TrainConfig, load_path: str | os.PathLike, *, force: bool = False,
              text_model: str | None = None) -> dict:
    """Score a saved checkpoint on test (``--only-test --load-path``); writes into cfg.run_dir. The model is
    the checkpoint's (``text_model``: where its encoder's config and tokenizer are now, if moved)."""
    device = resolve_device(cfg.device, 0)
    folder = rf.RunFolder(cfg.run_dir)
    for name in (rf.TEST_REPORT, rf.TEST_PREDICTIONS):
        if folder.file(name).exists() and not force:
            raise FileExistsError(f"{folder.file(name)} exists: pass --force to overwrite it")
    layout = check_layout(cfg.data_root, cfg.dataset)
    tweets = read_split(layout, "test")
    files = fingerprint({"test": layout.text_path("test")})
    source = load_source(load_path)  # read once: its config for the checks, then the network
    model_config = source.config
    if model_config.uses_images:
        check_split_images(layout, "test", [t.imgid for t in tweets], allow_missing=cfg.allow_missing_images)
    test_ex, counts = attach_images(tweets, layout, "test", aux_k=model_config.aux_k,
                                    with_images=model_config.uses_images)
    if model_config.uses_images and counts.any_found:
        check_clip(model_config.clip_model, model_config.clip_pretrained)
    model, loaded = load_model(source, device, text_model=text_model)  # checks a recorded matching tower
    collate = make_collator(model, loaded.config, [test_ex], [counts], cfg.feature_cache, device)
    run_cfg = TrainConfig(data_root=cfg.data_root, dataset=cfg.dataset, run_dir=cfg.run_dir, model=loaded.config,
                          eval_batch_size=cfg.eval_batch_size, amp=cfg.amp, device=cfg.device)
    folder.path.mkdir(parents=True, exist_ok=True)
    return score_test(folder, test_ex, collate, run_cfg, device, Dist(), checkpoint=Path(load_path),
                      loaded=(model, loaded), files=files)
