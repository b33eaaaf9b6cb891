"""One reading of --device (comipn_prep.devices) for grounding, training and the Tagger alike."""

from __future__ import annotations

import pytest
import torch

from comipn_prep.devices import resolve_device


def test_cpu_and_auto_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"--device {name} was asked for, but torch sees no CUDA device"):
            resolve_device(name)
    with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")


def test_cuda_is_this_processs_device(monkeypatch):
    """Checked without a GPU: torch is told it has two CUDA devices."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")  # one process: its current device
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)  # torchrun: one device per rank
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="only 2 CUDA device"):
        resolve_device("cuda:2")
