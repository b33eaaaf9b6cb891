"""Stage 2 of the pipeline: ground noun phrases to image regions and save the best ones as crops."""

from __future__ import annotations

from .driver import GroundConfig, Grounder, ImageResult, Loaded, SplitSummary, ground, ground_split, load_item
from .manifest import COLUMNS, read_manifest, read_split_manifests
from .nps_input import GroundItem, read_ground_items
from .selection import Selected, select_boxes
from .shards import Shard

__all__ = ["COLUMNS", "GroundConfig", "GroundItem", "Grounder", "ImageResult", "Loaded", "Selected", "Shard",
           "SplitSummary", "ground", "ground_split", "load_item", "read_ground_items", "read_manifest",
           "read_split_manifests", "select_boxes"]
