"""The one bf16 autocast rule, for training's evaluation and for the Tagger."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, amp: bool | None):
    """bf16 autocast on ``device`` when ``amp`` (None: on CUDA only); the CRF and losses leave it
    themselves (they run in fp32). Devices other than CUDA and the CPU run without it."""
    use = device.type == "cuda" if amp is None else amp
    if use and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
