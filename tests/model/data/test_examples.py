"""The trainer's data side: splits from the field's layout, aux dicts, masked images, seeded batches (no
model needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from comipn_prep.aux_dicts import load_aux_dict
from comipn_prep.conll import read_conll
from comipn_prep.layout import DatasetLayout, crop_name
from comipn_model.data.batch import WordBatcher
from comipn_model.data.batching import Collator, EpochBatches
from comipn_model.data.examples import load_split, subsample


def _small_root(tmp_path: Path, twitter_data: Path, name: str = "twitter2017", n: int = 12) -> Path:
    """A layout with the first n tweets of each real split."""
    root = tmp_path / "root"
    (root / name).mkdir(parents=True)
    for split in ("train", "valid", "test"):
        text = (twitter_data / name / f"{split}.txt").read_text(encoding="utf-8")
        blocks = [b for b in text.split("\n\n") if b.strip()][:n]
        (root / name / f"{split}.txt").write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return root


def test_text_only_split_reads_no_image(tmp_path, twitter_data):
    root = _small_root(tmp_path, twitter_data)
    examples, counts = load_split(DatasetLayout(root, "twitter2017"), "train", aux_k=3, with_images=False)
    expected = read_conll(root / "twitter2017" / "train.txt").tweets
    assert [ex.words for ex in examples] == [t.tokens for t in expected]
    assert all(ex.image_paths == [] for ex in examples)
    assert counts.images_missing == 0 and not counts.any_found


def test_missing_images_counted_with_one_warning(tmp_path, twitter_data, caplog):
    root = _small_root(tmp_path, twitter_data)
    layout = DatasetLayout(root, "twitter2017")
    tweets = read_conll(layout.text_path("train")).tweets
    layout.images_dir.mkdir()
    layout.crops_dir("train").mkdir(parents=True)
    # Images for the first 3 tweets; the aux dict lists 2 crops for tweets 0 and 5, one of them absent.
    for t in tweets[:3]:
        Image.new("RGB", (8, 8), (1, 2, 3)).save(layout.images_dir / f"{t.imgid}.jpg")
    aux = {tweets[0].image_name: [crop_name(tweets[0].imgid, 0), crop_name(tweets[0].imgid, 1)],
           tweets[5].image_name: [crop_name(tweets[5].imgid, 0)]}
    Image.new("RGB", (8, 8)).save(layout.crops_dir("train") / crop_name(tweets[0].imgid, 0))
    torch.save(aux, layout.dict_path("train"))
    with caplog.at_level(logging.WARNING, logger="comipn_model.data.examples"):
        examples, counts = load_split(layout, "train", aux_k=3, with_images=True)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{len(tweets) - 3} of {len(tweets)} images" in warnings[0].getMessage()
    assert "2 of 3 listed crops" in warnings[0].getMessage()
    assert (counts.images_found, counts.images_missing) == (3, len(tweets) - 3)
    assert (counts.crops_found, counts.crops_missing) == (1, 2)
    assert examples[0].image_paths[0] == layout.images_dir / f"{tweets[0].imgid}.jpg"
    assert examples[0].image_paths[1] == layout.crops_dir("train") / crop_name(tweets[0].imgid, 0)
    assert examples[0].image_paths[2] is None  # listed, not on disk: masked, not dropped
    assert examples[5].image_paths == [None, None]
    # aux_k limits the crops taken
    examples, _ = load_split(layout, "train", aux_k=1, with_images=True)
    assert len(examples[0].image_paths) == 2


def test_aux_dict_loaded_safely_and_bad_ones_named(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"1.jpg": ["1_pred_yolo_crop_0.png"], "2.jpg": []}, good)
    assert load_aux_dict(good) == {"1.jpg": ["1_pred_yolo_crop_0.png"], "2.jpg": []}
    assert load_aux_dict(tmp_path / "absent.pth", missing_ok=True) == {}  # a split prepared without crops
    with pytest.raises(FileNotFoundError, match="absent.pth: no such aux dict"):
        load_aux_dict(tmp_path / "absent.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"1.jpg": "not a list"}, bad)
    with pytest.raises(ValueError, match="bad.pth"):
        load_aux_dict(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.pth"):
        load_aux_dict(junk)


def test_subsample_is_seeded(twitter_data):
    tweets = read_conll(twitter_data / "twitter2017" / "valid.txt").tweets
    a = subsample(tweets, 0.1, seed=3)
    assert len(a) == round(len(tweets) * 0.1)
    assert [t.imgid for t in a] == [t.imgid for t in subsample(tweets, 0.1, seed=3)]
    assert [t.imgid for t in a] != [t.imgid for t in subsample(tweets, 0.1, seed=4)]
    with pytest.raises(ValueError):
        subsample(tweets, 0.0, seed=1)


@pytest.fixture(scope="module")
def batcher(minilm_path):
    from transformers import AutoTokenizer
    from comipn_prep.conll import bio_labels

    return WordBatcher(AutoTokenizer.from_pretrained(minilm_path, use_fast=True), bio_labels(), 128)


def test_epoch_batches_seeded_dynamic_padding_and_shards(tmp_path, twitter_data, batcher):
    root = _small_root(tmp_path, twitter_data, n=30)
    examples, _ = load_split(DatasetLayout(root, "twitter2017"), "train", aux_k=0, with_images=False)
    collate = Collator(batcher)
    loader = EpochBatches(examples, 8, collate, shuffle=True, seed=7)
    first = [b.input_ids for b in loader.epoch(0)]
    again = [b.input_ids for b in loader.epoch(0)]
    assert len(first) == len(loader) == 4
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    other_epoch = [b.input_ids for b in loader.epoch(1)]
    assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(first, other_epoch))
    # skipping batches (a resumed epoch) gives the tail of the same order
    tail = [b.input_ids for b in loader.epoch(0, skip_batches=2)]
    assert all(torch.equal(x, y) for x, y in zip(first[2:], tail))
    # dynamic padding: each batch as wide as its longest tweet, not max_seq
    for b in loader.epoch(0):
        assert b.input_ids.shape[1] == int(b.attention_mask.sum(1).max())
    # two ranks split every global batch of the same order between them
    parts = [EpochBatches(examples, 4, collate, shuffle=True, seed=7, rank=r, world_size=2) for r in (0, 1)]
    assert parts[0].global_batches(0) == loader.global_batches(0)
    seen = [i for b in parts[0].global_batches(0) for r in (0, 1) for i in b[r::2]]
    assert sorted(seen) == list(range(len(examples)))
    assert len(list(parts[0].epoch(0))) == len(list(parts[1].epoch(0))) == len(parts[0]) == 4


def test_length_bucketing_pads_less_same_tweets(tmp_path, twitter_data, batcher):
    root = _small_root(tmp_path, twitter_data, n=200)
    examples, _ = load_split(DatasetLayout(root, "twitter2017"), "train", aux_k=0, with_images=False)
    plain = EpochBatches(examples, 16, Collator(batcher), shuffle=True, seed=3)
    bucketed = EpochBatches(examples, 16, Collator(batcher), shuffle=True, seed=3, bucket=True, bucket_batches=5)
    assert sorted(i for b in bucketed.global_batches(0) for i in b) == list(range(len(examples)))
    assert bucketed.global_batches(0) == bucketed.global_batches(0) != bucketed.global_batches(1)

    def padded(loader):
        return sum(b.attention_mask.numel() for b in loader.epoch(0))

    assert padded(bucketed) < 0.85 * padded(plain)
