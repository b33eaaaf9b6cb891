"""--report-to (comipn_model.training.tracking): TensorBoard event files with the loss, learning rates and
dev scores; nothing at all without it or on a process other than the main one."""

from __future__ import annotations

import sys

import pytest

from comipn_model.saved.run_folder import TENSORBOARD
from comipn_model.training.tracking import TensorBoardTracker, Tracker, check_available, make_tracker


def test_tensorboard_gets_the_steps_and_the_epochs(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = make_tracker("tensorboard", tmp_path, main_process=True)
    assert isinstance(tracker, TensorBoardTracker)
    for step, loss in ((1, 2.5), (2, 1.5)):
        tracker.log_step(step, loss, {"text_encoder": 3e-5 * step, "new": 1e-3})
    tracker.log_epoch(2, {"epoch": 1, "train_loss": 2.0, "dev_precision": 0.5, "dev_recall": None, "dev_f1": 0.4})
    tracker.close()
    events = EventAccumulator(str(tmp_path / TENSORBOARD))
    events.Reload()
    scalars = {tag: [(e.step, round(e.value, 6)) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars == {"train/loss": [(1, 2.5), (2, 1.5)], "lr/text_encoder": [(1, 3e-5), (2, 6e-5)],
                       "lr/new": [(1, 0.001), (2, 0.001)], "epoch/train_loss": [(2, 2.0)], "epoch/epoch": [(2, 1.0)],
                       "dev/precision": [(2, 0.5)], "dev/f1": [(2, 0.4)]}  # no dev/recall: it had none


@pytest.mark.parametrize("report_to, main_process", [("none", True), ("tensorboard", False)])
def test_no_tracker_writes_nothing(tmp_path, report_to, main_process):
    tracker = make_tracker(report_to, tmp_path, main_process=main_process)
    assert type(tracker) is Tracker
    tracker.log_step(1, 1.0, {"new": 1e-3})
    tracker.log_epoch(1, {"epoch": 1, "train_loss": 1.0})
    tracker.close()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_tensorboard_is_named_before_training(monkeypatch):
    check_available("tensorboard")
    check_available("none")
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ValueError, match=r"needs the tensorboard package: pip install tensorboard"):
        check_available("tensorboard")
    check_available("none")
