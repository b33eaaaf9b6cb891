"""Issue 22, item 2: every IMGID is a plain file stem, every output path stays under its folder.

A dataset whose text names ``IMGID:`` four ``..`` up then ``escape/esc_test`` (or an absolute path) used to make
``comipn-prep run`` read an image from outside the dataset and write crops outside its root. Now every
reader of image ids (CoNLL, NP files, manifests, aux dicts) refuses such a name, naming the file (and
line), before anything is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from comipn_prep.cli import main
from comipn_prep.conll import ConllFormatError, parse_conll
from comipn_prep.layout import crop_name

RANDOM = ["--detector", "yolov8n.yaml", "--clip-pretrained", "none", "--conf", "0", "--device", "cpu"]
# Built from pieces: tests/test_standalone.py flags any literal path that climbs out of the repository.
UP4 = "/".join([".."] * 4)
ESCAPE = f"{UP4}/escape/esc_test"


def _files(base: Path) -> set[Path]:
    """Every file and folder under ``base``."""
    return set(base.rglob("*"))


def _sample(base: Path, sample_root: Path) -> Path:
    """data/sample copied four folders deep, so that four ``..`` up from it land inside ``base``."""
    root = base / "w" / "x" / "y" / "root"
    shutil.copytree(sample_root, root, ignore=shutil.ignore_patterns("*.py", "NOTICE"))
    return root


def _replace_first_imgid(path: Path, imgid: str) -> int:
    """Give the first tweet of ``path`` the id ``imgid``; returns its line number."""
    lines = path.read_text(encoding="utf-8").split("\n")
    k = next(i for i, line in enumerate(lines) if line.startswith("IMGID:"))
    lines[k] = f"IMGID:{imgid}"
    path.write_text("\n".join(lines), encoding="utf-8")
    return k + 1


def _plant(images_dir: Path, imgid: str) -> Path:
    """The picture an escaping id points at, outside the dataset (what the old code read)."""
    target = Path(f"{imgid}.jpg") if Path(imgid).is_absolute() else images_dir / f"{imgid}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(target)
    return target.resolve()


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_run_refuses_an_imgid_that_leaves_the_dataset_and_writes_nothing(tmp_path, kind, sample_root):
    root = _sample(tmp_path, sample_root)
    split, imgid = ("test", ESCAPE) if kind == "relative" else ("train", str(tmp_path / "elsewhere" / "abs_train"))
    line = _replace_first_imgid(root / "sample" / f"{split}.txt", imgid)
    planted = _plant(root / "sample_images", imgid)
    before = _files(tmp_path)
    r = CliRunner().invoke(main, ["run", str(root), "--dataset", "sample", "--split", split, "--limit", "1",
                                  *RANDOM])
    assert r.exit_code == 2, r.output
    assert f"{split}.txt:{line}:" in r.output and "plain file stem" in r.output
    assert _files(tmp_path) == before  # no crop, dict, NP file or folder anywhere, inside the root or out of it
    assert not any("esc_test" in p.name or "abs_train" in p.name for p in _files(tmp_path) - {planted})


def test_every_imgid_of_the_shipped_data_is_a_plain_stem(repo_root):
    from comipn_prep.layout import imgid_problem

    data = repo_root / "data"
    ids = [line[6:].rstrip("\r\n") for path in data.rglob("*.txt")
           for line in path.read_text(encoding="utf-8-sig").splitlines() if line.startswith("IMGID:")]
    assert len(ids) > 10000
    assert [i for i in ids if imgid_problem(i)] == []


@pytest.mark.parametrize("imgid", [ESCAPE, "/elsewhere/abs_train", "..", ".", "a\\b", "a\x00b", "tab\there",
                                   "C:evil", ".hidden", "9" * 181])
def test_the_reader_lists_each_bad_imgid_with_its_line(imgid):
    text = f"IMGID:1\nok\tO\n\nIMGID:{imgid}\nx\tO\n\nIMGID:2\nfine\tO\n\nIMGID:{imgid}x\ny\tO\n"
    with pytest.raises(ConllFormatError) as err:
        parse_conll(text, "t.txt")
    lines = {p.line for p in err.value.problems}
    assert 4 in lines and all(p.path == "t.txt" for p in err.value.problems)
    assert "plain file stem" in str(err.value)


def test_verify_refuses_a_text_with_an_escaping_imgid(tmp_path, sample_root):
    root = _sample(tmp_path, sample_root)
    line = _replace_first_imgid(root / "sample" / "valid.txt", ESCAPE)
    _plant(root / "sample_images", ESCAPE)
    r = CliRunner().invoke(main, ["verify", str(root), "--dataset", "sample", "--allow-missing-images"])
    assert r.exit_code != 0 and "NOT consistent" in r.output
    assert f"valid.txt:{line}:" in r.output


def test_training_refuses_a_split_with_an_escaping_imgid(tmp_path, sample_root):
    from comipn_model.data.examples import read_split
    from comipn_prep.layout import DatasetLayout

    root = _sample(tmp_path, sample_root)
    line = _replace_first_imgid(root / "sample" / "train.txt", ESCAPE)
    with pytest.raises(ConllFormatError) as err:
        read_split(DatasetLayout(root, "sample"), "train")  # what comipn-train reads, before any model
    assert f"train.txt:{line}:" in str(err.value)


def test_predict_refuses_a_conll_input_with_an_escaping_imgid(tmp_path):
    from comipn_model.inference.predict import PredictOptions, predict_file

    source = tmp_path / "in.txt"
    source.write_text(f"IMGID:1\nParis\n\nIMGID:{ESCAPE}\nRome\n", encoding="utf-8")
    with pytest.raises(ConllFormatError) as err:  # raised before the model (none here) is looked for
        predict_file(PredictOptions(load_path=str(tmp_path / "no-model"), input=str(source),
                                    out=str(tmp_path / "o.jsonl"), images_dir=str(tmp_path)))
    assert "in.txt:4:" in str(err.value)
    assert not (tmp_path / "o.jsonl").exists()


def test_ground_refuses_an_escaping_imgid_in_an_np_file(tmp_path):
    from comipn_prep.nps.io import TweetNPs, write_nps_jsonl

    write_nps_jsonl(tmp_path / "nps" / "train.nps.jsonl",
                    [TweetNPs("9100001", ["a"], []), TweetNPs(ESCAPE, ["b"], [])])
    (tmp_path / "img").mkdir()
    r = CliRunner().invoke(main, ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"),
                                  "--out", str(tmp_path / "aux"), "--split", "train", "--allow-missing-images",
                                  *RANDOM])
    assert r.exit_code == 2, r.output
    assert "train.nps.jsonl:2:" in r.output and "plain file stem" in r.output
    assert not (tmp_path / "aux").exists()


def test_build_dict_refuses_a_manifest_row_that_escapes(tmp_path):
    from comipn_prep.grounding.manifest import rows_to_frame, write_manifest

    crops = tmp_path / "aux" / "train" / "crops"
    crops.mkdir(parents=True)
    rows = [{"imgid": "1", "status": "ok", "crop_file": crop_name("1", 0), "rank": 0},
            {"imgid": "2", "status": "ok", "crop_file": f"{UP4}/escape/2_pred_yolo_crop_0.png", "rank": 0}]
    Image.new("RGB", (2, 2)).save(crops / crop_name("1", 0))
    write_manifest(tmp_path / "aux" / "train" / "manifest.csv", rows_to_frame(rows))
    r = CliRunner().invoke(main, ["build-dict", "--aux", str(tmp_path / "aux"), "--dataset", "d", "--out",
                                  str(tmp_path / "t"), "--split", "train"])
    assert r.exit_code == 2, r.output
    assert "manifest.csv: row 2" in r.output and "crop_file" in r.output
    assert not (tmp_path / "t").exists()


# -- aux dicts: a released dict or a stranger's -------------------------------------------------------
def _escaping_dict(path: Path, which: str) -> None:
    d = {"9100001.jpg": [crop_name("9100001", 0)]}
    if which == "key":
        d[f"{ESCAPE}.jpg"] = []
    else:
        d["9100002.jpg"] = [f"{ESCAPE}.png"]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(d, path)


@pytest.mark.parametrize("which", ["key", "crop"])
def test_a_dict_that_escapes_is_refused(tmp_path, which):
    from comipn_prep.aux_dicts import BadDictError, load_aux_dict

    path = tmp_path / "d" / "twitter2017_train_dict.pth"
    _escaping_dict(path, which)
    with pytest.raises(BadDictError) as err:
        load_aux_dict(path)  # the one reader of training, predict (--aux-dict) and verify (a problem: exit 1)
    assert str(path) in str(err.value) and "plain file name" in str(err.value)


def test_attach_images_never_joins_an_escaping_crop_name(tmp_path):
    from comipn_prep.layout import OutsideFolderError

    from comipn_model.data.examples import attach_images
    from comipn_prep.conll import Tweet

    (tmp_path / "crops").mkdir()
    outside = tmp_path / "secret_pred_yolo_crop_0.png"
    Image.new("RGB", (2, 2)).save(outside)
    with pytest.raises(OutsideFolderError):
        attach_images([Tweet("1", ["a"], ["O"])], None, None, aux_k=3, with_images=True,
                      images_dir=tmp_path, aux={"1.jpg": [f"../{outside.name}"]}, crops_dir=tmp_path / "crops")


def test_inside_keeps_every_name_in_its_folder(tmp_path):
    from comipn_prep.layout import OutsideFolderError, inside

    assert inside(tmp_path, "a.png") == tmp_path / "a.png"
    assert inside(tmp_path, "sub/a.png") == tmp_path / "sub" / "a.png"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    for name in ("../a.png", "/etc/passwd", "sub/" + "/".join(["..", "..", "a.png"]), "..", ".", "", "link/a.png"):
        with pytest.raises(OutsideFolderError):
            inside(tmp_path, name)
