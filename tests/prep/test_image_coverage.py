"""The one check for missing images (comipn_prep.image_coverage) that prep and training both call."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from comipn_prep.image_coverage import MissingImagesError, check_dict_keys, check_split_images
from comipn_prep.layout import DatasetLayout


def _layout(tmp_path, present: list[str]) -> DatasetLayout:
    layout = DatasetLayout(tmp_path, "tw")
    layout.images_dir.mkdir(parents=True)
    for imgid in present:
        Image.new("RGB", (4, 4)).save(layout.images_dir / f"{imgid}.jpg")
    return layout


def test_no_image_folder_is_an_error_with_counts_examples_and_flag(tmp_path):
    layout = DatasetLayout(tmp_path, "tw")
    with pytest.raises(MissingImagesError) as err:
        check_split_images(layout, "val", ["a", "b", "a"])
    text = str(err.value)
    assert "tw valid: only 0 of 2 tweet images" in text
    assert "no such folder" in text and "missing e.g. a.jpg" in text and "present e.g. none" in text
    assert "--allow-missing-images" in text and "\n" not in text


def test_under_half_present_is_an_error_half_is_not(tmp_path):
    layout = _layout(tmp_path, ["a"])
    with pytest.raises(MissingImagesError, match=r"only 1 of 3 .*present e.g. a\.jpg.*missing e\.g\. b\.jpg"):
        check_split_images(layout, "train", ["a", "b", "c"])
    cov = check_split_images(layout, "train", ["a", "b"])
    assert (cov.expected, cov.present, cov.missing) == (2, 1, 1)


def test_allow_missing_warns_and_returns_the_counts(tmp_path, caplog):
    layout = _layout(tmp_path, [])
    with caplog.at_level(logging.WARNING, logger="comipn_prep.image_coverage"):
        cov = check_split_images(layout, "test", ["a", "b"], allow_missing=True)
    assert (cov.expected, cov.present) == (2, 0)
    assert "only 0 of 2" in caplog.text


def test_other_suffixes_count_as_present(tmp_path):
    layout = _layout(tmp_path, [])
    Image.new("RGB", (4, 4)).save(layout.images_dir / "a.png")
    assert check_split_images(layout, "test", ["a"]).example_present == "a.png"


def test_dict_keys_without_jpg_are_an_error(tmp_path):
    aux = {"a": ["a_pred_yolo_crop_0.png"], "b": []}
    with pytest.raises(MissingImagesError) as err:
        check_dict_keys(tmp_path / "d.pth", aux, ["a", "b"])
    text = str(err.value)
    assert "only 0 of 2 keys" in text and "key e.g. a" in text and "image name e.g. a.jpg" in text
    assert "--allow-missing-images" in text
    check_dict_keys(tmp_path / "d.pth", aux, ["a", "b"], allow_missing=True)  # allowed: no raise


def test_dict_keys_matching_pass_and_empty_dict_fails(tmp_path):
    check_dict_keys(tmp_path / "d.pth", {"a.jpg": [], "zz.jpg": []}, ["a", "b"])  # 1 of 2 keys: enough
    with pytest.raises(MissingImagesError, match="only 0 of 0 keys"):
        check_dict_keys(tmp_path / "d.pth", {}, ["a"])
    check_dict_keys(tmp_path / "d.pth", {}, [])  # an empty split needs nothing
