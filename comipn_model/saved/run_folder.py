"""The run folder: everything a training run leaves behind, each file written atomically.

```
config.json            the whole TrainConfig (enough to rerun)
experiment.toml        the experiment file the options came from (--config), as given (or .yaml / .yml)
data.json              the files the run read: sha256 and known version of each split and aux dict, and
                       the splits' warnings (valid = test, shared tweets)
metrics.jsonl          one line per epoch: train loss, dev P/R/F1, seconds, tweets/s
best.pt / last.pt      model, optimizer, scheduler, RNG states, epoch (plain tensors and primitives only,
                       loadable with torch.load(weights_only=True))
test_report.json       overall and per-type P/R/F1 of the chosen checkpoint on test, its epoch, and the
                       fingerprint of the test split it was scored on ("data")
test_predictions.txt   CoNLL: token, gold, predicted
curves.png             train loss and dev F1 per epoch
tensorboard/           event files (--report-to tensorboard)
.comipn.lock           held while a process writes here (one writer per folder)
```

config.json is written when training starts (after every check passed), with absolute paths.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from comipn_prep.conll import Tweet, atomic_write_bytes, format_conll
from comipn_prep.folder_lock import LOCK_NAME  # the lock file (and its .holder) is no run file

log = logging.getLogger(__name__)

CONFIG = "config.json"
DATA = "data.json"
METRICS = "metrics.jsonl"
BEST = "best.pt"
LAST = "last.pt"
TEST_REPORT = "test_report.json"
TEST_PREDICTIONS = "test_predictions.txt"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"  # event files of --report-to tensorboard
RUN_FILES = (CONFIG, DATA, METRICS, BEST, LAST, TEST_REPORT, TEST_PREDICTIONS, CURVES)
EXPERIMENT_FILES = ("experiment.toml", "experiment.yaml", "experiment.yml")  # the --config file, kept


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    # -- creating -------------------------------------------------------------------------------
    def holds_run(self) -> bool:
        """Whether a run left files here. A lone config.json (and data.json) does not count: it is what
        a run that failed before its first checkpoint wrote, and a new run may take the folder over."""
        return self.path.is_dir() and any(p.name not in (CONFIG, DATA, *EXPERIMENT_FILES)
                                          and not p.name.startswith(LOCK_NAME) for p in self.path.iterdir())

    def check(self, *, resume: bool, force: bool) -> None:
        """Refuse, before anything is loaded or written, a new run over a run (without ``force``) or a
        resume of nothing."""
        if resume:
            if not self.file(LAST).is_file():
                raise FileNotFoundError(f"{self.file(LAST)}: nothing to resume (no last.pt in {self.path}); "
                                        f"start the run again without --resume")
            return
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(f"{self.path} is a file, not a run folder")
        if self.holds_run() and not force:
            raise FileExistsError(f"{self.path} already holds files: pass --resume to continue that run "
                                  f"or --force to start over in it")

    def prepare(self, *, resume: bool, force: bool) -> None:
        """Make the folder for a new run, or check it holds a run to resume.

        A folder with a run in it is never written over without ``--force`` (new run) or ``--resume``;
        ``--force`` removes only the files a run writes.
        """
        self.check(resume=resume, force=force)
        if not resume and self.path.is_dir():
            for name in (*RUN_FILES, *EXPERIMENT_FILES):
                self.file(name).unlink(missing_ok=True)
            tracking = self.file(TENSORBOARD)
            if tracking.is_dir():
                shutil.rmtree(tracking)
        self.path.mkdir(parents=True, exist_ok=True)

    def keep_experiment_file(self, source: str | os.PathLike | None) -> None:
        """A copy of the experiment file the run's options came from, as ``experiment<suffix>``: the file
        as it was when the run started (a resume keeps the first copy)."""
        if not source or not Path(source).is_file():
            return
        target = self.file("experiment" + Path(source).suffix.lower())
        if target.name in EXPERIMENT_FILES and not target.exists():
            atomic_write_bytes(target, Path(source).read_bytes())

    # -- json files -----------------------------------------------------------------------------
    def write_json(self, name: str, data: dict) -> None:
        atomic_write_bytes(self.file(name), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def read_json(self, name: str) -> dict:
        path = self.file(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None

    def read_metrics(self) -> list[dict]:
        path = self.file(METRICS)
        if not path.is_file():
            return []
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        return rows

    def write_metrics(self, rows: Sequence[dict]) -> None:
        """Rewrite metrics.jsonl whole (atomic): a resumed run drops the epochs after its checkpoint."""
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        atomic_write_bytes(self.file(METRICS), text.encode())

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, name: str, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.file(name), buffer.getvalue())

    def load_checkpoint(self, name: str, map_location="cpu") -> dict:
        return load_checkpoint(self.file(name), map_location)

    # -- test outputs ---------------------------------------------------------------------------
    def write_predictions(self, tweets: Sequence[Tweet], predicted: Sequence[Sequence[str]],
                          name: str = TEST_PREDICTIONS) -> None:
        atomic_write_bytes(self.file(name), format_conll(tweets, extra_columns=predicted).encode("utf-8"))

    def plot_curves(self, rows: Sequence[dict]) -> None:
        plot_curves(rows, self.file(CURVES))


def model_state(model) -> dict:
    """The model's weights as plain CPU tensors (what checkpoints hold)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a clear error naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - unreadable or unsafe pickles are bad input
        raise ValueError(f"{path}: not a loadable comipn checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise ValueError(f"{path}: not a comipn checkpoint (no model / model_config entries)")
    return state


# -- RNG states as plain tensors and primitives ----------------------------------------------------
def rng_state() -> dict:
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plot_curves(rows: Sequence[dict], out: Path) -> None:
    """Train loss and dev F1 per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="training loss")
    dev = [(r["epoch"], r["dev_f1"]) for r in rows if r.get("dev_f1") is not None]
    if dev:
        ax_f1.plot([e for e, _ in dev], [f for _, f in dev], marker="o", color="tab:green")
    ax_f1.set(xlabel="epoch", ylabel="dev F1", title="dev F1 (seqeval)")
    for ax in (ax_loss, ax_f1):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
