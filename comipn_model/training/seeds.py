"""Several seeds of one configuration (``comipn-train --seeds``): one run per seed in ``RUN_DIR/seed-<k>/``,
resumable where a kill left it, then ``seeds.json`` with dev and test F1 as mean, sd, min and max.

The runs share everything but the seed (and so the feature cache). A resumed multi-seed run skips the
seeds already scored on test, continues the one whose ``last.pt`` is there, and starts the rest.
"""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from comipn_prep.folder_lock import holding

from comipn_model.saved import run_folder as rf
from comipn_model.training.config import TrainConfig, resume_config
from comipn_model.training.evaluate import run_folder_lock
from comipn_model.training.loop import TrainResult, train

log = logging.getLogger(__name__)

SEEDS_SUMMARY = "seeds.json"


def seed_folder(run_dir: str | Path, seed: int) -> Path:
    return Path(run_dir) / f"seed-{seed}"


def seed_config(cfg: TrainConfig, seed: int) -> TrainConfig:
    """One seed's run: the same configuration, its own seed and folder."""
    return replace(cfg, seed=seed, seeds=None, run_dir=str(seed_folder(cfg.run_dir, seed)))


@dataclass
class SeedsResult:
    run_dir: Path
    summary: dict | None  # seeds.json's content; None when a seed's run stopped early
    stopped: TrainResult | None = None  # the seed's run that a signal (or stop_after_steps) stopped


def check_folder(cfg: TrainConfig, *, resume: bool, force: bool) -> None:
    """A new multi-seed run needs a new or empty folder (or ``force``); a resume, the folder's config."""
    folder = rf.RunFolder(cfg.run_dir)
    if resume:
        return
    if folder.path.exists() and not folder.path.is_dir():
        raise FileExistsError(f"{folder.path} is a file, not a run folder")
    held = [p.name for p in folder.path.iterdir() if p.name not in (rf.CONFIG, *rf.EXPERIMENT_FILES)
            and not p.name.startswith(".")] if folder.path.is_dir() else []
    if held and not force:
        raise FileExistsError(f"{folder.path} already holds {', '.join(sorted(held)[:4])}: pass --resume to "
                              f"continue that run or --force to start over in it")


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def summarise(run_dir: str | Path, seeds: list[int]) -> dict:
    """``seeds.json``: each seed's best dev epoch and F1 and its test scores, and over the seeds the dev
    and test F1 (micro, and per entity type) as mean, sd (n - 1), min and max."""
    per_seed = []
    for seed in seeds:
        folder = rf.RunFolder(seed_folder(run_dir, seed))
        report = folder.read_json(rf.TEST_REPORT)
        per_seed.append({"seed": seed, "best_epoch": report.get("epoch"), "dev_f1": report.get("dev_f1"),
                         "test": report["overall"],
                         "test_per_type": {t: row["f1"] for t, row in report.get("per_type", {}).items()}})
    types = sorted({t for row in per_seed for t in row["test_per_type"]})
    return {"seeds": seeds, "per_seed": per_seed,
            "dev_f1": _stats([row["dev_f1"] for row in per_seed]),
            "test_f1": _stats([row["test"]["f1"] for row in per_seed]),
            "test_precision": _stats([row["test"]["precision"] for row in per_seed]),
            "test_recall": _stats([row["test"]["recall"] for row in per_seed]),
            "test_f1_per_type": {t: _stats([row["test_per_type"].get(t, 0.0) for row in per_seed]) for t in types}}


def format_summary(summary: dict) -> str:
    """The table a multi-seed run prints (F1 x 100)."""
    lines = [f"{'seed':>6} {'best epoch':>10} {'dev F1':>7} {'test F1':>7}"]
    lines += [f"{row['seed']:>6} {row['best_epoch']:>10} {100 * row['dev_f1']:7.2f} {100 * row['test']['f1']:7.2f}"
              for row in summary["per_seed"]]

    def show(name: str, s: dict) -> str:
        return (f"{name:<12} {100 * s['mean']:6.2f} +- {100 * s['sd']:.2f}  "
                f"(min {100 * s['min']:.2f}, max {100 * s['max']:.2f}, {s['n']} seeds)")

    lines += ["", show("dev F1", summary["dev_f1"]), show("test F1", summary["test_f1"])]
    lines += [show(f"test {t}", s) for t, s in summary["test_f1_per_type"].items()]
    return "\n".join(lines)


@holding(run_folder_lock)
def train_seeds(cfg: TrainConfig, *, resume: bool = False, force: bool = False,
                stop_after_steps: int | None = None) -> SeedsResult:
    """Train ``cfg`` once per seed of ``cfg.seeds``, each into ``RUN_DIR/seed-<k>/``, then write and return
    the summary. ``resume``: continue a killed multi-seed run (``cfg`` from its config.json).
    ``stop_after_steps``: passed to the first seed that still trains (a stand-in for a kill, for tests)."""
    cfg = cfg.absolute()
    if not cfg.seeds:
        raise ValueError("train_seeds needs cfg.seeds (--seeds 1,2,3 or --seeds 3)")
    folder = rf.RunFolder(cfg.run_dir)
    # Under torchrun only rank 0 checks and writes the folder (the others would see its writes as a run).
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        check_folder(cfg, resume=resume, force=force)
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.write_json(rf.CONFIG, cfg.to_dict())  # what --resume reads back (seeds included)
        folder.keep_experiment_file(cfg.config_file)
    for seed in cfg.seeds:
        child = rf.RunFolder(seed_folder(cfg.run_dir, seed))
        if child.file(rf.TEST_REPORT).is_file() and (resume or not force):
            log.info("seed %d: scored already (%s)", seed, child.file(rf.TEST_REPORT))
            continue
        go_on = resume and child.file(rf.LAST).is_file()
        if go_on:  # its own config.json, with what a resume may change
            child_cfg = resume_config(child.path, device=cfg.device, epochs=cfg.epochs, data_root=cfg.data_root)
        else:
            child_cfg = seed_config(cfg, seed)
        log.info("seed %d (%d of %d) -> %s", seed, cfg.seeds.index(seed) + 1, len(cfg.seeds), child.path)
        result = train(child_cfg, resume=go_on, force=force or resume, stop_after_steps=stop_after_steps)
        if result.stopped:
            return SeedsResult(folder.path, None, stopped=result)
        stop_after_steps = None
    if not main:
        return SeedsResult(folder.path, None)
    summary = summarise(cfg.run_dir, cfg.seeds)
    folder.write_json(SEEDS_SUMMARY, summary)
    return SeedsResult(folder.path, summary)
