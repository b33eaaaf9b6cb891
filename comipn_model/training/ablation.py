"""The paper's ablation table as runs (``comipn-train ablate``): the full model, text-only, each idea
removed and each idea alone, every row a multi-seed run (:mod:`.seeds`) in ``OUT/<row>/``, all sharing the
feature cache.

Resumable row by row: a row whose ``seeds.json`` holds every seed is done, a row with a run in it goes on
where it stopped (its seeds resume as ``--seeds`` runs do), the rest start. A row's folder made with
another configuration is refused rather than mixed in. The table itself is :mod:`.ablation_table`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from comipn_model.saved import run_folder as rf
from comipn_model.training.config import TrainConfig, resume_config
from comipn_model.training.seeds import SEEDS_SUMMARY, SeedsResult, train_seeds

log = logging.getLogger(__name__)

SWITCHES = ("use_prompt", "use_dynamic_matching", "use_contrastive")
IDEAS = {"prompt": "use_prompt", "matching": "use_dynamic_matching", "contrastive": "use_contrastive"}
# name -> (label in the table, switches on). The order is the table's.
ROWS: dict[str, tuple[str, set[str]]] = {
    "full": ("Co-MIPN (every idea)", set(SWITCHES)),
    "text-only": ("text only (encoder + CRF)", set()),
    "no-prompt": ("- visual prefix prompts", set(SWITCHES) - {IDEAS["prompt"]}),
    "no-matching": ("- dynamic similarity matching", set(SWITCHES) - {IDEAS["matching"]}),
    "no-contrastive": ("- contrastive aggregation", set(SWITCHES) - {IDEAS["contrastive"]}),
    "prompt": ("visual prefix prompts alone", {IDEAS["prompt"]}),
    "matching": ("dynamic similarity matching alone", {IDEAS["matching"]}),
    "contrastive": ("contrastive aggregation alone", {IDEAS["contrastive"]}),
}
ABLATION_RECORD = "ablation.json"
# What does not make a run another run (where it runs and reads from: the split fingerprints check the data).
_NOT_THE_RECIPE = ("run_dir", "seed", "seeds", "config_file", "device", "data_root", "feature_cache")


@dataclass
class AblationRow:
    name: str
    label: str
    cfg: TrainConfig  # the row's multi-seed run (cfg.seeds, cfg.run_dir = OUT/<name>)
    state: str  # "done", "resume" or "new"

    @property
    def folder(self) -> Path:
        return Path(self.cfg.run_dir)


def parse_rows(text: str) -> list[str]:
    """``--rows``: row names separated by commas, in the table's order as given."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROWS]
    if unknown or not names:
        raise ValueError(f"unknown row(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(ROWS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a row is named twice in {text!r}")
    return names


def row_config(base: TrainConfig, name: str, out: str | Path, seeds: list[int]) -> TrainConfig:
    """The base recipe with the row's switches, its seeds and its folder ``OUT/<name>``."""
    on = ROWS[name][1]
    model = replace(base.model, **{switch: switch in on for switch in SWITCHES})
    if not model.use_dynamic_matching:
        model = replace(model, matching_tower=None)  # only matching reads it (as comipn-train does)
    return replace(base, model=model, seeds=list(seeds), run_dir=str(Path(out) / name)).absolute()


def recipe_fingerprint(cfg: TrainConfig) -> str:
    """sha256 of what makes the run this run (the config less its folder, seeds and device), 12 digits."""
    data = cfg.absolute().to_dict()
    for name in _NOT_THE_RECIPE:
        data.pop(name, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _row_state(cfg: TrainConfig) -> str:
    folder = rf.RunFolder(cfg.run_dir)
    if not folder.file(rf.CONFIG).is_file():
        held = [p.name for p in folder.path.iterdir()] if folder.path.is_dir() else []
        if any(not name.startswith(".") for name in held):
            raise FileExistsError(f"{folder.path} holds files but no {rf.CONFIG}: not a row of an ablation; "
                                  f"use another --out")
        return "new"
    saved = TrainConfig.from_dict(folder.read_json(rf.CONFIG))
    if recipe_fingerprint(saved) != recipe_fingerprint(cfg):
        raise ValueError(f"{folder.path} was run with another configuration than this ablation's {folder.path.name} "
                         f"row (recipe {recipe_fingerprint(saved)}, now {recipe_fingerprint(cfg)}): use another "
                         f"--out, or remove that folder to run the row again")
    if folder.file(SEEDS_SUMMARY).is_file():
        done = folder.read_json(SEEDS_SUMMARY).get("seeds", [])
        if all(seed in done for seed in cfg.seeds):
            return "done"
    return "resume"


def plan(base: TrainConfig, rows: list[str], seeds: list[int], out: str | Path) -> list[AblationRow]:
    """Every row's run and what is left of it; refuses (before anything runs) a row folder of another recipe."""
    if not seeds:
        raise ValueError("an ablation needs seeds (--seeds 5, or seeds in the experiment file)")
    planned = []
    for name in rows:
        cfg = row_config(base, name, out, seeds)
        planned.append(AblationRow(name, ROWS[name][0], cfg, _row_state(cfg)))
    return planned


def describe(rows: list[AblationRow]) -> list[str]:
    """One line per run an ablation makes (``--dry-run``): row, seed, what happens, folder."""
    lines = []
    for row in rows:
        done = set()
        if row.state != "new":
            done = {seed for seed in row.cfg.seeds
                    if rf.RunFolder(Path(row.cfg.run_dir) / f"seed-{seed}").file(rf.TEST_REPORT).is_file()}
        for seed in row.cfg.seeds:
            what = "done" if seed in done else ("resume" if row.state == "resume" else "train")
            lines.append(f"{row.name:<15} seed {seed:<4} {what:<7} {Path(row.cfg.run_dir) / f'seed-{seed}'}")
    return lines


def write_record(out: str | Path, base: TrainConfig, rows: list[AblationRow], baseline: str) -> None:
    """``OUT/ablation.json``: the base recipe, the rows with their recipes' fingerprints, the seeds and the
    baseline of the differences (what the table is made from, before any run)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"base": base.to_dict(), "baseline": baseline, "seeds": rows[0].cfg.seeds if rows else [],
              "rows": [{"name": r.name, "label": r.label, "folder": str(r.folder),
                        "switches": {s: getattr(r.cfg.model, s) for s in SWITCHES},
                        "recipe": recipe_fingerprint(r.cfg)} for r in rows]}
    rf.RunFolder(out).write_json(ABLATION_RECORD, record)
    rf.RunFolder(out).keep_experiment_file(base.config_file)


def run(rows: list[AblationRow], *, stop_after_steps: int | None = None) -> SeedsResult | None:
    """Train every row that is not done, in order; returns the stopped seed run when a signal stopped one
    (the ablation then resumes at that row and seed), else None. ``stop_after_steps``: a stand-in for a
    kill in the first seed that still trains (tests)."""
    for index, row in enumerate(rows, 1):
        if row.state == "done":
            log.info("row %d of %d, %s: done (%s)", index, len(rows), row.name, row.folder / SEEDS_SUMMARY)
            continue
        log.info("row %d of %d, %s (%s): seeds %s -> %s", index, len(rows), row.name, row.label,
                 ",".join(map(str, row.cfg.seeds)), row.folder)
        if row.state == "resume":
            cfg = resume_config(row.folder, device=row.cfg.device, seeds=row.cfg.seeds)
            result = train_seeds(cfg, resume=True, stop_after_steps=stop_after_steps)
        else:
            result = train_seeds(row.cfg, stop_after_steps=stop_after_steps)
        if result.stopped is not None:
            return result
        row.state = "done"
    return None
