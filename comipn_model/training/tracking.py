"""Experiment tracking: ``--report-to tensorboard`` writes the loss and learning rates per step and the
dev scores per epoch as TensorBoard event files (``<run>/tensorboard/``). The ``tensorboard`` package is
an optional dependency, checked before training starts."""

from __future__ import annotations

import logging
from pathlib import Path

from comipn_model.saved.run_folder import TENSORBOARD

log = logging.getLogger(__name__)



class Tracker:
    """Does nothing: the default (``--report-to none``) and every non-main process."""

    def log_step(self, step: int, loss: float, lrs: dict[str, float]) -> None:
        pass

    def log_epoch(self, step: int, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def log_step(self, step: int, loss: float, lrs: dict[str, float]) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        for name, lr in lrs.items():
            self.writer.add_scalar(f"lr/{name}", lr, step)

    def log_epoch(self, step: int, row: dict) -> None:
        # x axis: the optimizer step at the epoch's end, so epoch and step curves line up
        self.writer.add_scalar("epoch/train_loss", row["train_loss"], step)
        self.writer.add_scalar("epoch/epoch", row["epoch"], step)
        for key in ("precision", "recall", "f1"):
            if row.get(f"dev_{key}") is not None:
                self.writer.add_scalar(f"dev/{key}", row[f"dev_{key}"], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def check_available(report_to: str) -> None:
    """Fail before training when the tracker's package is missing."""
    if report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ValueError("--report-to tensorboard needs the tensorboard package: pip install tensorboard "
                             "(or pip install 'comipn[tracking]')") from None


def make_tracker(report_to: str, run_dir: Path, main_process: bool) -> Tracker:
    if report_to == "tensorboard" and main_process:
        folder = Path(run_dir) / TENSORBOARD
        log.info("tensorboard event files in %s (tensorboard --logdir %s)", folder, folder)
        return TensorBoardTracker(folder)
    return Tracker()
