"""The region loss's targets: per word of a tweet and per crop, does the crop hold the word's entity?

From GMNER-shaped gold (``<data-root>/<dataset>/xml/<imgid>.xml``, Pascal VOC, read by :mod:`comipn_prep.gmner`)
and each crop's box in the original image (grounding's ``manifest.csv``,
:func:`comipn_prep.grounding.manifest.crop_boxes`). For a word inside a gold entity and a crop with a box:
1 when the crop's box overlaps one of the entity's gold boxes with IoU strictly above 0.5 (the GMNER
scorer's rule), else 0 (an entity without a box is in no crop). Not supervised (-1): words outside gold
entities, crops without a box or missing on disk, and tweets without an XML file.

:func:`check_region_sources` says, before anything loads, which file or folder is missing;
:func:`attach_region_targets` sets :attr:`Example.region_targets`; :func:`region_tensors` pads a batch's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from comipn_prep.gmner import XML_DIR, ground_entities
from comipn_prep.grounding.manifest import crop_boxes, manifest_paths
from comipn_prep.grounding.selection import iou
from comipn_prep.layout import DatasetLayout
from comipn_prep.voc import read_voc

from comipn_model.data.examples import Example

UNSUPERVISED = -1
MATCH_IOU = 0.5  # strictly above: a match (the GMNER scorer's rule)


def xml_dir(layout: DatasetLayout) -> Path:
    """Where a dataset's gold boxes are: ``<data-root>/<dataset>/xml/`` (as ``comipn-prep import-gmner`` lays
    it out)."""
    return layout.text_dir / XML_DIR


def check_region_sources(layout: DatasetLayout, split: str = "train") -> None:
    """FileNotFoundError naming what the region loss needs and is not there: the XML folder, or the split's
    grounding manifest (the crops' boxes)."""
    folder = xml_dir(layout)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; the region loss (--region-weight) trains on gold boxes, "
                                f"one Pascal VOC file <imgid>.xml per image (comipn-prep import-gmner writes them)")
    split_dir = layout.crops_dir(split).parent
    if not manifest_paths(split_dir):
        raise FileNotFoundError(f"{split_dir / 'manifest.csv'}: no such file; the region loss (--region-weight) "
                                f"needs each crop's box, which comipn-prep ground records there")


def word_targets(tweet, objects, boxes: Sequence[Sequence[float] | None]) -> list[list[int]]:
    """Per word of ``tweet``, per crop of ``boxes`` (None: no box), 1 / 0 / -1 (see the module's docstring);
    ``objects``: the tweet's VOC objects."""
    rows = [[UNSUPERVISED] * len(boxes) for _ in tweet.tokens]
    entities, _ = ground_entities(tweet, objects)
    for entity in entities:
        row = [UNSUPERVISED if box is None else int(any(iou(box, gold) > MATCH_IOU for gold in entity.boxes))
               for box in boxes]
        for w in range(entity.start, entity.end):
            rows[w] = list(row)
    return rows


def attach_region_targets(examples: Sequence[Example], layout: DatasetLayout, split: str) -> int:
    """Set each example's :attr:`~comipn_model.data.examples.Example.region_targets` from its XML file and its
    crops' boxes (in place); returns how many examples have an XML file."""
    folder = xml_dir(layout)
    boxes_of = crop_boxes(layout.crops_dir(split).parent)
    found = 0
    for ex in examples:
        xml = folder / f"{ex.tweet.imgid}.xml"
        if not xml.is_file():
            ex.region_targets = None
            continue
        found += 1
        boxes = [None if p is None else boxes_of.get(Path(p).name) for p in ex.image_paths[1:]]
        ex.region_targets = word_targets(ex.tweet, read_voc(xml), boxes)
    return found


def region_tensors(examples: Sequence[Example], width: int, crops: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The batch's ``(B, width, crops)`` targets (float) and mask (bool); None when no example has targets."""
    if all(ex.region_targets is None for ex in examples):
        return None
    values = torch.full((len(examples), width, crops), UNSUPERVISED, dtype=torch.long)
    for b, ex in enumerate(examples):
        for w, row in enumerate((ex.region_targets or [])[:width]):
            row = row[:crops]
            values[b, w, :len(row)] = torch.tensor(row, dtype=torch.long)
    mask = values != UNSUPERVISED
    return values.clamp(min=0).float(), mask
