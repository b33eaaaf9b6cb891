"""verify: a dataset folder in the field's layout, consistent or not (all files made here)."""

from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from comipn_prep.cli import main
from comipn_prep.conll import read_conll, write_conll
from comipn_prep.layout import SPLITS, DatasetLayout, crop_name
from comipn_prep.aux_dicts import BadDictError, load_aux_dict
from comipn_prep.verify import verify_dataset

NAME = "twitter2017"


@pytest.fixture()
def layout(tmp_path, twitter_data) -> DatasetLayout:
    """Real tweets (4 a split), an image each, crops 0..2 per image and the dicts listing them."""
    lay = DatasetLayout(tmp_path, NAME)
    lay.images_dir.mkdir(parents=True)
    for split in SPLITS:
        tweets = read_conll(twitter_data / NAME / f"{split}.txt").tweets[:4]
        write_conll(lay.text_path(split), tweets)
        crops_dir = lay.crops_dir(split)
        crops_dir.mkdir(parents=True)
        d = {}
        for k, t in enumerate(tweets):
            Image.new("RGB", (32, 24), (k * 40, 0, 0)).save(lay.images_dir / f"{t.imgid}.jpg")
            names = [crop_name(t.imgid, n) for n in range(k % 3)]
            for n in names:
                Image.new("RGB", (8, 8)).save(crops_dir / n)
            if names or k % 2:
                d[f"{t.imgid}.jpg"] = names
        torch.save(d, lay.dict_path(split))
    return lay


def _run(lay, *extra):
    return CliRunner().invoke(main, ["verify", str(lay.root), "--dataset", NAME, *extra])


def test_consistent_layout_passes(layout):
    report = verify_dataset(layout.root, NAME)
    assert report.ok and report.problems == []
    s = report.splits[0]
    assert s.images_in_text == 4 and s.crop_counts == {"0": 2, "1": 1, "2": 1, "3+": 0} and s.crops_checked == 3
    r = _run(layout)
    assert r.exit_code == 0 and "consistent" in r.output and "NOT" not in r.output


def test_key_of_another_split_fails(layout):
    d = load_aux_dict(layout.dict_path("test"))
    d["999999.jpg"] = []
    torch.save(d, layout.dict_path("test"))
    r = _run(layout)
    assert r.exit_code == 1 and "'999999.jpg' is not an image of test.txt" in r.output


def test_missing_and_corrupt_crops_fail(layout):
    crops = sorted(layout.crops_dir("train").iterdir())
    crops[0].unlink()
    crops[1].write_bytes(b"\x89PNG broken")
    r = _run(layout)
    assert r.exit_code == 1
    assert f"{crops[0]}: listed for" in r.output and "missing" in r.output
    assert f"{crops[1]}: listed for" in r.output and "does not open" in r.output
    assert _run(layout, "--no-open").exit_code == 1  # the missing one still counts


def test_crop_of_another_image_fails(layout):
    d = load_aux_dict(layout.dict_path("valid"))
    key = next(k for k, v in d.items() if v)
    other = next(k for k in d if k != key)
    d[other] = list(d[key])
    torch.save(d, layout.dict_path("valid"))
    r = _run(layout)
    assert r.exit_code == 1 and "a crop of another image" in r.output


def test_missing_dict_and_missing_images(layout):
    layout.dict_path("valid").unlink()
    first = read_conll(layout.text_path("train")).tweets[0].imgid
    (layout.images_dir / f"{first}.jpg").unlink()
    r = _run(layout)
    assert r.exit_code == 1 and "twitter2017_val_dict.pth: aux dict missing" in r.output
    assert f"missing images: {first}" in r.output


def test_missing_images_fail_only_when_strict(layout):
    first = read_conll(layout.text_path("test")).tweets[1].imgid
    (layout.images_dir / f"{first}.jpg").unlink()
    assert _run(layout).exit_code == 0
    r = _run(layout, "--strict")
    assert r.exit_code == 1 and first in r.output


class Evil:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-comipn",))


@pytest.mark.parametrize("payload,message", [
    (["a.jpg"], "holds a list"),
    ({"a.jpg": [1, 2]}, "not a list of strings"),
    ({"a.jpg": "a_pred_yolo_crop_0.png"}, "not a list of strings"),
    ({3: ["x"]}, "key 3 is a int"),
    ({"a.jpg": torch.zeros(2)}, "not a list of strings"),
])
def test_bad_dict_shapes_are_refused(tmp_path, payload, message):
    torch.save(payload, tmp_path / "d.pth")
    with pytest.raises(BadDictError, match=message):
        load_aux_dict(tmp_path / "d.pth")


def test_arbitrary_pickle_is_refused_not_run(tmp_path, layout):
    torch.save({"x.jpg": Evil()}, layout.dict_path("train"))
    with pytest.raises(BadDictError, match="weights_only"):
        load_aux_dict(layout.dict_path("train"))
    r = _run(layout)
    assert r.exit_code == 1 and "only a plain dict of lists of strings is accepted" in r.output


def test_not_a_dataset_folder_exits_2(tmp_path):
    r = CliRunner().invoke(main, ["verify", str(tmp_path), "--dataset", "nothing"])
    assert r.exit_code == 2 and "nothing" in r.output


def test_unreadable_tweet_images_are_reported(layout):
    first = read_conll(layout.text_path("valid")).tweets[0].imgid
    (layout.images_dir / f"{first}.jpg").write_bytes(b"not a jpeg")
    report = verify_dataset(layout.root, NAME)
    valid = next(s for s in report.splits if s.split == "valid")
    assert valid.images_on_disk == 4 and len(valid.unreadable_images) == 1
    assert not report.ok  # issue 22: an image that is there but does not open fails, --strict or not
    for extra in ([], ["--strict"]):
        r = _run(layout, *extra)
        assert r.exit_code == 1 and f"unreadable images: {first}.jpg: unreadable" in r.output, r.output
        assert "NOT consistent" in r.output
    assert _run(layout, "--strict", "--no-open").exit_code == 0  # without decoding it is not seen


def test_no_images_exit_2_with_counts_and_run_with_the_flag(layout):
    shutil.rmtree(layout.images_dir)
    layout.images_dir.mkdir()
    r = _run(layout)
    assert r.exit_code == 2
    assert "twitter2017 train: only 0 of 4 tweet images are on disk" in r.output
    assert "missing e.g." in r.output and "--allow-missing-images" in r.output
    r = _run(layout, "--allow-missing-images")
    assert r.exit_code == 0 and "0 on disk, 4 missing" in r.output


def test_under_half_the_images_exit_2(layout):
    for tweet in read_conll(layout.text_path("test")).tweets[:3]:
        (layout.images_dir / f"{tweet.imgid}.jpg").unlink()
    r = _run(layout)
    assert r.exit_code == 2 and "twitter2017 test: only 1 of 4" in r.output and "train" not in \
        r.output.split("error:")[1]


def test_dict_keys_without_jpg_exit_2(layout):
    d = load_aux_dict(layout.dict_path("train"))
    torch.save({k.removesuffix(".jpg"): v for k, v in d.items()}, layout.dict_path("train"))
    r = _run(layout)
    assert r.exit_code == 2 and "twitter2017_train_dict.pth: only 0 of 3 keys" in r.output
    assert "--allow-missing-images" in r.output
    assert _run(layout, "--allow-missing-images").exit_code == 1  # then listed key by key
