"""Fixtures of the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def text_and_image_checkpoints(make_tiny_encoder, make_checkpoint):
    """``text_and_image_checkpoints(base)``: a tiny encoder and two checkpoints on it under ``base``:
    ``text`` (no switch: reads no image) and ``all`` (every switch on)."""
    def make(base: Path) -> dict:
        encoder = make_tiny_encoder(base / "encoder")
        return {"text": make_checkpoint(base / "text" / "best.pt", encoder, switches=False),
                "all": make_checkpoint(base / "all" / "best.pt", encoder)}

    return make
