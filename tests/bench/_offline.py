"""Imported first by the bench scripts: the offline environment (no model hub on our machines) and the
repository on sys.path, before any library that might reach for the network is imported."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="comipn-yolo-config-"))

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
