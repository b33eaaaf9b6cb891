"""The region loss's targets (comipn_model.data.region_targets): per entity word and crop, 1 where the crop's
box overlaps one of the entity's gold boxes with IoU strictly above 0.5; unsupervised words, crops and
tweets masked; the files it needs named when missing."""

from __future__ import annotations

import pytest
import torch

from comipn_prep.conll import Tweet
from comipn_prep.grounding.manifest import rows_to_frame, write_manifest
from comipn_prep.layout import DatasetLayout, crop_name
from comipn_prep.voc import VocObject
from comipn_model.data.examples import Example
from comipn_model.data.region_targets import (attach_region_targets, check_region_sources, region_tensors,
                                              word_targets, xml_dir)

TWEET = Tweet("t1", ["Kevin", "Durant", "meets", "Obama", "in", "Paris"],
              ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"])
GOLD = [VocObject("Kevin Durant", (0, 0, 100, 100)), VocObject("Obama", (200, 0, 300, 100))]
# IoU with the gold boxes: 1 with Kevin Durant's; exactly 0.5 with Obama's (no match); none; 0.6 with Obama's.
CROPS = [(0, 0, 100, 100), (200, 0, 300, 50), None, (200, 0, 300, 60)]


def test_targets_by_hand():
    rows = word_targets(TWEET, GOLD, CROPS)
    none = [-1, -1, -1, -1]
    assert rows == [[1, 0, -1, 0], [1, 0, -1, 0],  # Kevin Durant: its box is crop 0
                    none,  # outside every entity: not supervised
                    [0, 0, -1, 1],  # Obama: IoU exactly 0.5 is no match, 0.6 is
                    none,
                    [0, 0, -1, 0]]  # Paris, not in the picture: in no crop


def test_batch_tensors_pad_and_mask():
    a = Example(TWEET, region_targets=word_targets(TWEET, GOLD, CROPS[:3]))
    b = Example(Tweet("t2", ["hi"], ["O"]))  # no XML: nothing supervised
    assert region_tensors([b], 4, 3) is None
    targets, mask = region_tensors([a, b], 8, 3)
    assert targets.shape == mask.shape == (2, 8, 3) and targets.dtype == torch.float32 and mask.dtype == torch.bool
    assert targets[0, 0].tolist() == [1.0, 0.0, 0.0] and mask[0, 0].tolist() == [True, True, False]
    assert not mask[0, 2].any() and not mask[0, 6:].any() and not mask[1].any()
    assert int(mask.sum()) == 4 * 2 and float(targets.sum()) == 2.0


def test_targets_from_the_files_and_the_missing_ones_named(tmp_path):
    layout = DatasetLayout(tmp_path, "gmner")
    with pytest.raises(FileNotFoundError, match=f"{xml_dir(layout)}: no such folder; the region loss"):
        check_region_sources(layout)
    xml_dir(layout).mkdir(parents=True)
    split_dir = layout.crops_dir("train").parent
    with pytest.raises(FileNotFoundError, match=f"{split_dir / 'manifest.csv'}: no such file"):
        check_region_sources(layout)
    names = [crop_name("t1", i) for i in range(3)]
    write_manifest(split_dir / "manifest.csv", rows_to_frame(
        {"imgid": "t1", "status": "ok", "crop_file": name, "rank": i, "x1": b[0], "y1": b[1], "x2": b[2],
         "y2": b[3], "phrase": "p", "clip_score": 0.1, "det_score": 0.5, "image_width": 640, "image_height": 480}
        for i, (name, b) in enumerate(zip(names, [CROPS[0], CROPS[3], CROPS[1]]))))
    check_region_sources(layout)
    (xml_dir(layout) / "t1.xml").write_text(
        "<annotation>" + "".join(f"<object><name>{o.name}</name><bndbox><xmin>{o.box[0]}</xmin><ymin>{o.box[1]}"
                                 f"</ymin><xmax>{o.box[2]}</xmax><ymax>{o.box[3]}</ymax></bndbox></object>"
                                 for o in GOLD) + "</annotation>", encoding="utf-8")
    crops = layout.crops_dir("train")
    # crop 1 is missing on disk (None): not supervised; a crop the manifest has no row for neither
    examples = [Example(TWEET, [None, crops / names[0], None, crops / names[1]]),
                Example(Tweet("t2", ["Obama"], ["B-PER"]), [None, crops / names[2]]),  # no XML file
                Example(TWEET, [None, crops / "other.png"])]
    assert attach_region_targets(examples, layout, "train") == 2
    assert examples[0].region_targets == [[1, -1, 0], [1, -1, 0], [-1, -1, -1], [0, -1, 1], [-1, -1, -1],
                                          [0, -1, 0]]
    assert examples[1].region_targets is None
    assert examples[2].region_targets[0] == [-1]
