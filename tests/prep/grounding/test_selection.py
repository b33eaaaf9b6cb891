"""Box selection, pixel rounding and shards: pure functions, no model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comipn_prep.grounding.selection import iou, pixel_boxes, select_boxes
from comipn_prep.grounding.shards import Shard

BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [20, 0, 30, 10]], dtype=float)
DET = np.array([0.9, 0.8, 0.7, 0.6])


def test_each_phrase_takes_its_best_box_ranked_by_score():
    sims = np.array([[0.1, 0.2, 0.9, 0.0],   # "dog" -> box 2
                     [0.5, 0.1, 0.3, 0.0],   # "man" -> box 0
                     [0.0, 0.0, 0.1, 0.4]])  # "car" -> box 3
    sel = select_boxes(BOXES, DET, sims, ["dog", "man", "car"], top_k=3, iou_threshold=0.5)
    assert [(s.rank, s.phrase, s.box) for s in sel] == [
        (0, "dog", (50, 50, 60, 60)), (1, "man", (0, 0, 10, 10)), (2, "car", (20, 0, 30, 10))]
    assert sel[0].clip_score == pytest.approx(0.9) and sel[0].det_score == pytest.approx(0.7)


def test_near_duplicates_dropped_and_top_k():
    sims = np.array([[0.9, 0.1, 0.0, 0.0], [0.1, 0.8, 0.0, 0.0], [0.0, 0.0, 0.7, 0.0]])
    sel = select_boxes(BOXES, DET, sims, ["a", "b", "c"], top_k=3, iou_threshold=0.5)
    assert [s.phrase for s in sel] == ["a", "c"]  # box 1 overlaps box 0 (IoU 0.68)
    sel = select_boxes(BOXES, DET, sims, ["a", "b", "c"], top_k=3, iou_threshold=0.9)
    assert [s.phrase for s in sel] == ["a", "b", "c"]
    assert len(select_boxes(BOXES, DET, sims, ["a", "b", "c"], top_k=1)) == 1


def test_box_chosen_by_two_phrases_keeps_best():
    sims = np.array([[0.3, 0, 0, 0], [0.6, 0, 0, 0]])
    sel = select_boxes(BOXES, DET, sims, ["x", "y"], top_k=3)
    assert len(sel) == 1 and sel[0].phrase == "y" and sel[0].clip_score == pytest.approx(0.6)


def test_no_phrases_uses_detector_order():
    sel = select_boxes(BOXES, DET, None, [], top_k=3, iou_threshold=0.5)
    assert [s.box for s in sel] == [(0, 0, 10, 10), (50, 50, 60, 60), (20, 0, 30, 10)]
    assert all(math.isnan(s.clip_score) and s.phrase == "" for s in sel)


def test_no_boxes_no_crops():
    assert select_boxes(np.zeros((0, 4)), np.zeros(0), None, ["a"], top_k=3) == []


def test_pixel_boxes_round_outward_clip_and_drop_zero_area():
    boxes = np.array([[0.4, 0.6, 9.2, 9.9], [5, 5, 5, 9], [-3, -2, 700, 500], [3, 3, 3.0, 3.0], [10, 4, 10.5, 4]])
    out, keep = pixel_boxes(boxes, 640, 480)
    assert out[0].tolist() == [0, 0, 10, 10]
    assert out[2].tolist() == [0, 0, 640, 480]
    assert keep.tolist() == [0, 2]  # zero width / height dropped (the last one is 1 px wide, 0 tall)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50)),
                min_size=1, max_size=8), st.integers(1, 4), st.floats(0.1, 0.9), st.integers(0, 3))
def test_selection_invariants(raw, top_k, thr, n_phr):
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in raw])
    rng = np.random.default_rng(len(raw) * 7 + n_phr)
    sims = rng.uniform(-1, 1, (n_phr, len(boxes))) if n_phr else None
    sel = select_boxes(boxes, np.linspace(1, 0, len(boxes)), sims, [f"p{i}" for i in range(n_phr)], top_k, thr)
    assert len(sel) <= top_k and [s.rank for s in sel] == list(range(len(sel)))
    for a in range(len(sel)):
        for b in range(a):
            assert iou(np.array(sel[a].box, float), np.array(sel[b].box, float)) <= thr + 1e-9
    if n_phr:
        scores = [s.clip_score for s in sel]
        assert scores == sorted(scores, reverse=True) and len(sel) >= 1


def test_shards_partition_the_set():
    items = list(range(23))
    parts = [Shard.parse(f"{i}/4").take(items) for i in range(4)]
    assert sorted(x for p in parts for x in p) == items
    assert parts[1] == [1, 5, 9, 13, 17, 21]
    assert Shard.parse(None).whole and Shard.parse("0/1").manifest_name == "manifest.csv"
    assert Shard.parse("2/3").manifest_name == "manifest.shard-2-of-3.csv"
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_under_torchrun_each_process_takes_its_share_of_the_shard():
    """W processes of shard I/N are shards I + r*N of N*W: together exactly shard I/N's items."""
    items = list(range(37))
    assert Shard.parse("1/3").for_process({}) == Shard(1, 3)  # not under torchrun: unchanged
    assert Shard.parse(None).for_process({"WORLD_SIZE": "1", "RANK": "0"}).whole
    procs = [Shard.parse("1/3").for_process({"WORLD_SIZE": "4", "RANK": str(r)}) for r in range(4)]
    assert procs[2] == Shard(7, 12)
    assert sorted(x for p in procs for x in p.take(items)) == Shard(1, 3).take(items)
    whole = [Shard.parse(None).for_process({"WORLD_SIZE": "2", "RANK": str(r)}) for r in range(2)]
    assert [p.manifest_name for p in whole] == ["manifest.shard-0-of-2.csv", "manifest.shard-1-of-2.csv"]
    with pytest.raises(ValueError, match="RANK"):
        Shard.parse(None).for_process({"WORLD_SIZE": "2", "RANK": "2"})
