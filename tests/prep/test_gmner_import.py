"""`comipn-prep import-gmner` (comipn_prep.gmner_import): the Twitter-GMNER release in the field's layout,
text byte for byte, boxes beside it, images linked (or copied) under their ids; everything checked first."""

from __future__ import annotations

import json

from click.testing import CliRunner

from comipn_prep.cli import main
from comipn_prep.gmner import read_gmner_split
from comipn_prep.gmner_import import RECORD, ImportOptions, import_gmner
from comipn_prep.layout import DatasetLayout


def test_the_release_is_laid_out_and_reads_back_the_same(tmp_path, make_gmner_release):
    src, images = make_gmner_release(tmp_path / "dl", sizes=(4, 3, 3))
    other = tmp_path / "other_images"  # a second folder: ids take the first that holds them
    other.mkdir()
    (images / "gone.png").touch()
    first = sorted(images.iterdir())[0]
    first.rename(other / first.name)
    result = CliRunner().invoke(main, ["import-gmner", str(src), str(tmp_path / "root"), "--dataset", "gmner",
                                       "--images", str(images), "--images", str(other), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    lay = DatasetLayout(tmp_path / "root", "gmner")
    assert lay.text_path("train").read_bytes() == (src / "txt" / "train.txt").read_bytes()
    assert lay.text_path("valid").read_bytes() == (src / "txt" / "dev.txt").read_bytes()
    for split in ("train", "dev", "test"):
        assert read_gmner_split(lay.text_dir, split).tweets == read_gmner_split(src, split).tweets
    assert summary["images"] == {"ids": 10, "found": 10, "placed": 10, "how": "link", "missing": 0,
                                 "first_missing": []}
    assert (lay.images_dir / first.name).resolve() == (other / first.name).resolve()
    assert not (lay.images_dir / "gone.png").exists()  # only the tweets' images
    assert json.loads((lay.text_dir / RECORD).read_text()) == summary
    boxes = sum(len(e.boxes) for s in ("train", "dev", "test")
                for t in read_gmner_split(src, s).tweets.values() for e in t.entities)
    assert sum(s["boxes"] for s in summary["splits"].values()) == boxes > 0


def test_existing_text_needs_force_and_copies_are_files(tmp_path, make_gmner_release):
    src, images = make_gmner_release(tmp_path / "dl", sizes=(2, 2, 2))
    opts = ImportOptions(src=src, root=tmp_path / "root", name="g", images=[images], copy_images=True)
    assert import_gmner(opts)["images"]["placed"] == 6
    lay = DatasetLayout(tmp_path / "root", "g")
    assert all(p.is_file() and not p.is_symlink() for p in lay.images_dir.iterdir())
    result = CliRunner().invoke(main, ["import-gmner", str(src), str(tmp_path / "root"), "--dataset", "g"])
    assert result.exit_code == 2 and "exists: pass --force" in result.output
    result = CliRunner().invoke(main, ["import-gmner", str(src), str(tmp_path / "root"), "--dataset", "g", "--force"])
    assert result.exit_code == 0, result.output
    assert "images: 0 of 6 found" in result.output and "6 missing" in result.output  # no --images given


def test_bad_xml_or_text_is_named_before_any_write(tmp_path, make_gmner_release):
    src, images = make_gmner_release(tmp_path / "dl", sizes=(2, 2, 2))
    xml = sorted((src / "xml").iterdir())[-1]
    xml.write_text(xml.read_text().replace("<xmin>", "<xmin>x", 1))
    root = tmp_path / "root"
    result = CliRunner().invoke(main, ["import-gmner", str(src), str(root), "--images", str(images)])
    assert result.exit_code == 2 and f"{xml}: <object> 1" in result.output and "is not a number" in result.output
    assert not root.exists()
    xml.unlink()
    (src / "txt" / "test.txt").write_text("IMGID:1\nword\tB-FOO\n")
    result = CliRunner().invoke(main, ["import-gmner", str(src), str(root)])
    assert result.exit_code == 2 and f"{src / 'txt' / 'test.txt'}:2: label 'B-FOO'" in result.output
    assert not root.exists()
