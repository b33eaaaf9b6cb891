"""Regions on entities (comipn_model.inference.regions, Tagger(linker=...)): the box of the best crop by the
model's own dynamic-matching relevance or by CLIP, "none" below the threshold saved with the model
(comipn_model.saved.regions_record), and a reason instead of a guess for crops without boxes."""

from __future__ import annotations

import json

import pytest
import torch

from comipn_prep.grounding.manifest import rows_to_frame, write_manifest
from comipn_prep.images import load_image
from comipn_prep.layout import crop_name
from comipn_model import Tagger
from comipn_model.inference.regions import NO_BOX, NO_CROP, NO_REGION_HEAD, TEXT_ONLY, link, pooled_scores
from comipn_model.saved.regions_record import read_regions, regions_path, write_regions

RAW = ["Elon Musk visits Paris today with NASA",
       "RT @SpaceX : Falcon 9 lifts off from Cape Canaveral with NASA's DSCOVR"]
BOXES = [(0, 0, 320, 240), (300, 200, 640, 480), (100, 50, 400, 300)]


def test_pooling_and_linking_by_hand():
    scores = pooled_scores([[0.2, 0.9, 0.1], [0.4, 0.1, 0.3], [9.0, 9.0, 9.0]], 0, 2)
    assert scores == pytest.approx([0.3, 0.5, 0.2])
    crops = [{"box": [1, 2, 3, 4]}, {"box": [5, 6, 7, 8]}, {"box": None}]
    assert link([0.3, 0.5, 0.9], crops, None) == {"box": [5.0, 6.0, 7.0, 8.0], "box_score": 0.5}  # no box: no candidate
    assert link([0.3, 0.5, 0.9], [{"box": [1, 2, 3, 4]}, {"box": [5, 6, 7, 8], "used": False}], None)["box"] == \
        [1.0, 2.0, 3.0, 4.0]  # an unreadable crop is no candidate either
    below = link([0.3, 0.5], crops[:2], 0.6)
    assert below["box"] is None and below["box_score"] == 0.5 and "below the none threshold 0.6" in below["box_reason"]
    assert link([0.3, 0.5], crops[:2], 0.5)["box"] == [5.0, 6.0, 7.0, 8.0]  # at the threshold: kept
    assert link([], [], 0.1) == {"box": None, "box_score": None, "box_reason": NO_CROP}
    assert link([0.4], [{"file": "released.png"}], None) == {"box": None, "box_score": None, "box_reason": NO_BOX}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, text_and_image_checkpoints, picture):
    base = tmp_path_factory.mktemp("regions")
    models = text_and_image_checkpoints(base)
    split = base / "aux" / "test"  # as comipn-prep ground writes it: crops/ beside manifest.csv
    crops = [picture(split / "crops" / crop_name("img", i), seed=20 + i, size=(64, 48)) for i in range(3)]
    write_manifest(split / "manifest.csv", rows_to_frame(
        {"imgid": "img", "status": "ok", "crop_file": c.name, "rank": i, "x1": b[0], "y1": b[1], "x2": b[2],
         "y2": b[3], "phrase": "p", "clip_score": 0.1, "det_score": 0.5, "image_width": 640, "image_height": 480}
        for i, (c, b) in enumerate(zip(crops, BOXES))))
    released = base / "released" / "test" / "crops"  # no manifest: the field's released crops
    released.mkdir(parents=True)
    bare = [picture(released / c.name, seed=20 + i, size=(64, 48)) for i, c in enumerate(crops)]
    image = picture(base / "img.jpg", seed=3)
    return {"models": models, "crops": crops, "bare": bare, "image": image}


@pytest.fixture(scope="module")
def matching(setup):
    return Tagger.from_pretrained(setup["models"]["all"], device="cpu", linker="matching")


def _same_model(tagger, **options):
    """Another Tagger on the same loaded network and vision tower (no second build)."""
    other = Tagger(tagger.model, tagger._loaded, tagger.device, **options)
    other._tower = tagger._vision()
    return other


def _entities(results):
    return [e for r in results for e in r.entities]


def test_matching_links_each_entity_to_its_most_relevant_crop(setup, matching):
    tagger = matching
    results = tagger(RAW, images=[setup["image"]] * 2, crops=[setup["crops"], setup["crops"][:2]])
    entities = _entities(results)
    assert entities, "the random checkpoint tags something"
    assert [c["box"] for c in results[0].crops] == [list(b) for b in BOXES]  # from the manifest
    # the model's own relevance, recomputed here: image 0 is the picture, then the crops in order
    encoded = tagger.batcher.collate(tagger.batcher.tokenise([r.tokens for r in results]),
                                     visual=tagger._visual([_item(r, setup, k) for k, r in enumerate(results)])[0])
    relevance = tagger.model.word_image_relevance(encoded)
    for k, r in enumerate(results):
        for e in r.entities:
            pooled = relevance[k, e["token_start"]:e["token_end"], 1:1 + len(r.crops)].mean(0)
            best = int(pooled.argmax())
            assert e["box"] == [float(v) for v in BOXES[best]] and e["box_linker"] == "matching"
            assert e["box_score"] == pytest.approx(float(pooled[best]), abs=1e-5) and 0 <= e["box_score"] <= 1


def _item(result, setup, k):
    from comipn_model.inference.tagger import _Item

    return _Item(k, result.tokens, image=setup["image"], crops=setup["crops"] if k == 0 else setup["crops"][:2])


def test_a_threshold_saved_with_the_model_makes_entities_none_and_can_be_overridden(setup, matching, tmp_path):
    checkpoint = setup["models"]["all"]
    path = write_regions(checkpoint.parent, "matching", 2.0, split="valid")
    try:
        assert regions_path(checkpoint) == path and read_regions(checkpoint)["none_threshold"] == 2.0
        tagger = _same_model(matching, linker="matching")  # read when a Tagger is made (from_pretrained too)
        assert tagger.none_threshold == 2.0
        entities = _entities(tagger(RAW, images=[setup["image"]] * 2, crops=[setup["crops"]] * 2))
        assert entities and all(e["box"] is None and "below the none threshold 2" in e["box_reason"] and
                                e["box_score"] is not None for e in entities)
        # the threshold is that linker's: clip takes none, and an explicit one wins
        assert _same_model(tagger, linker="clip").none_threshold is None
        tagger = _same_model(tagger, linker="matching", none_threshold=None)
        assert all(e["box"] is not None for e in _entities(tagger(RAW, images=[setup["image"]] * 2,
                                                                  crops=[setup["crops"]] * 2)))
        exported = matching.save_pretrained(tmp_path / "exported")  # the threshold goes with the model
        assert read_regions(exported) == read_regions(checkpoint)
        assert Tagger.from_pretrained(exported, device="cpu", linker="matching").none_threshold == 2.0
        path.write_text(json.dumps({"linker": "yolo"}))
        with pytest.raises(ValueError, match="regions.json: expected"):
            _same_model(matching, linker="matching")
    finally:
        path.unlink()


def test_crops_without_boxes_give_null_with_the_reason(setup, matching):
    tagger = matching
    entities = _entities(tagger(RAW, images=[setup["image"]] * 2, crops=[setup["bare"]] * 2))
    assert entities and all(e["box"] is None and e["box_reason"] == NO_BOX for e in entities)
    entities = _entities(tagger(RAW, images=[setup["image"]] * 2, crops=[[]] * 2))
    assert entities and all(e["box_reason"] == NO_CROP for e in entities)


def test_clip_scores_the_entity_text_against_each_crop(setup, matching):
    tagger = _same_model(matching, linker="clip")
    results = tagger(RAW, images=[setup["image"]] * 2, crops=[setup["crops"]] * 2)
    matcher = tagger._clip()
    pictures = [load_image(c) for c in setup["crops"]]
    crops = torch.tensor(matcher.encode_crops(pictures))
    for e in _entities(results):
        sims = crops @ torch.tensor(matcher.encode_phrases([e["word"]]))[0]
        assert e["box"] == [float(v) for v in BOXES[int(sims.argmax())]] and e["box_linker"] == "clip"
        assert e["box_score"] == pytest.approx(float(sims.max()), abs=1e-5)


def test_the_largest_box_baseline_links_every_entity_to_the_largest_crop(setup, matching):
    tagger = _same_model(matching, linker="largest")
    entities = _entities(tagger(RAW, images=[setup["image"]] * 2, crops=[setup["crops"]] * 2))
    # areas: 320 x 240 = 76800, 340 x 280 = 95200, 300 x 250 = 75000
    assert entities and all(e["box"] == [300.0, 200.0, 640.0, 480.0] and e["box_score"] == 95200 for e in entities)


def test_a_linker_the_model_cannot_serve_is_refused(setup, make_checkpoint, tmp_path, matching):
    with pytest.raises(ValueError, match="text-only model"):
        Tagger.from_pretrained(setup["models"]["text"], device="cpu", linker="matching")
    no_matching = make_checkpoint(tmp_path / "nm" / "best.pt", setup["models"]["all"].parent.parent / "encoder",
                                  use_dynamic_matching=False)
    with pytest.raises(ValueError, match="without it: use linker 'clip'"):
        Tagger.from_pretrained(no_matching, device="cpu", linker="matching")
    with pytest.raises(ValueError, match="unknown linker"):
        _same_model(matching, linker="yolo")


def test_the_default_linker_is_matching_for_a_model_with_a_region_head_and_none_otherwise(
        setup, make_checkpoint, tmp_path, matching):
    # No head (or no picture): no linker, and every entity says so with a null box; linker=None: no regions.
    for model, reason in ((setup["models"]["all"], NO_REGION_HEAD), (setup["models"]["text"], TEXT_ONLY)):
        tagger = Tagger.from_pretrained(model, device="cpu")
        assert tagger.linker is None
        entities = _entities(tagger(RAW, images=[setup["image"]] * 2, crops=[setup["crops"]] * 2)
                             if tagger.uses_images else tagger(RAW))
        assert entities and all(e["box"] is None and e["box_score"] is None and e["box_reason"] == reason
                                for e in entities)
        off = _same_model(tagger, linker=None)
        assert all("box" not in e for e in _entities(off(RAW, images=[setup["image"]] * 2, crops=[setup["crops"]] * 2)
                                                     if tagger.uses_images else off(RAW)))
    with pytest.raises(ValueError, match="has no region head"):
        _same_model(matching, linker="auto", none_threshold=0.5)
    headed = make_checkpoint(tmp_path / "rh" / "best.pt", setup["models"]["all"].parent.parent / "encoder",
                             region_weight=1.0)
    tagger = Tagger.from_pretrained(headed, device="cpu")
    assert tagger.linker == "matching" and tagger.model.region_head is not None
    results = tagger(RAW, images=[setup["image"]] * 2, crops=[setup["crops"]] * 2)
    entities = _entities(results)
    assert entities and all(e["box_linker"] == "matching" and e["box"] in [list(map(float, b)) for b in BOXES]
                            for e in entities)
    # The head's probabilities are what it links by: pooled over the entity's words, the best crop's.
    encoded = tagger.batcher.collate(tagger.batcher.tokenise([r.tokens for r in results]),
                                     visual=tagger._visual([_item(r, setup, 0) for r in results])[0])
    relevance = tagger.model.word_image_relevance(encoded)
    assert torch.all(relevance[..., 0] == 0)  # the whole picture is no candidate
    for k, r in enumerate(results):
        for e in r.entities:
            pooled = relevance[k, e["token_start"]:e["token_end"], 1:4].mean(0)
            assert e["box_score"] == pytest.approx(float(pooled.max()), abs=1e-5)
    # The head and its weight go with the exported model.
    exported = tagger.save_pretrained(tmp_path / "exported")
    again = Tagger.from_pretrained(exported, device="cpu")
    assert again.config.region_weight == 1.0 and again.linker == "matching"
    assert all(torch.equal(a, b) for a, b in zip(tagger.model.region_head.state_dict().values(),
                                                 again.model.region_head.state_dict().values()))
