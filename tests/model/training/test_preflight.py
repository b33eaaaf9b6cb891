"""comipn_model.training.preflight: the data checks that run before any model is loaded, each with the
likely fix (the same checks through comipn-train are in tests/model/cli/test_train.py)."""

from __future__ import annotations

import pytest

from comipn_prep.conll import Tweet
from comipn_model.training.preflight import check_entities, check_layout


@pytest.fixture(scope="module")
def root(tmp_path_factory, make_root):
    return make_root(tmp_path_factory.mktemp("preflight") / "NER_data", sizes=(3, 2, 2))


def test_a_complete_layout_passes(root):
    layout = check_layout(root, "twitter2017")
    assert layout.text_path("train") == root / "twitter2017" / "train.txt"


@pytest.mark.parametrize("data_root, dataset, hint", [
    ("{root}", "twitter17", "did you mean --dataset twitter2017? (HVPNeT calls it twitter17"),
    ("{root.parent}", "twitter2017", "did you mean --data-root {root}?"),
    ("{root}/twitter2017", "twitter2017", "did you mean --data-root {root}? (--data-root is the folder above"),
    ("{root}", "twitter2019", "datasets under {root}: twitter2017"),
])
def test_a_dataset_that_is_not_there_gets_the_likely_fix(root, data_root, dataset, hint):
    with pytest.raises(FileNotFoundError, match="the train split of") as err:
        check_layout(data_root.format(root=root), dataset)
    assert hint.format(root=root) in str(err.value)


def test_no_data_root_folder_and_a_missing_split(root, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"--data-root {root / 'nope'} is not a folder; datasets under "
                                                f"{root}: twitter2017"):
        check_layout(root / "nope", "twitter2017")
    partial = tmp_path / "twitter2017"
    partial.mkdir()
    (partial / "train.txt").write_bytes((root / "twitter2017" / "train.txt").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"valid.txt: the valid split of 'twitter2017' is not there; .* "
                                                r"holds train.txt"):
        check_layout(tmp_path, "twitter2017")


def test_a_train_split_without_entities_has_nothing_to_learn(tmp_path):
    tweets = [Tweet("1", ["hello", "world"], ["O", "O"])]
    with pytest.raises(ValueError, match="train.txt: no entity label in the train split among the tweets "
                                         "--sample-ratio kept"):
        check_entities(tweets, tmp_path / "train.txt", sampled=True)
    check_entities(tweets + [Tweet("2", ["Paris"], ["B-LOC"])], tmp_path / "train.txt", sampled=False)


def test_clip_weights_named_by_tag_are_refused_offline_when_not_cached(tmp_path, monkeypatch):
    """An open_clip tag (here ViT-B-32 'openai') can only come from the Hub: offline and not in the cache,
    the check says so and names the flag that takes a local file, before anything loads."""
    from comipn_prep.weights import WeightsUnavailable
    from comipn_model.training.preflight import check_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(WeightsUnavailable, match=r"offline \(HF_HUB_OFFLINE\) and CLIP weights ViT-B-32/openai are "
                                                 r"not cached; pass a local weights file with --clip-pretrained"):
        check_clip("ViT-B-32", "openai")
    check_clip("ViT-B-32", None)  # random weights need nothing


def test_the_region_loss_names_the_gold_boxes_it_misses_before_anything_loads(tmp_path, make_root):
    from click.testing import CliRunner

    from comipn_model.cli import main
    from comipn_model.network.config import CoMIPNConfig
    from comipn_model.training.config import TrainConfig
    from comipn_model.training.preflight import load_run_data

    root = make_root(tmp_path / "NER_data", sizes=(3, 2, 2))
    cfg = TrainConfig(data_root=str(root), dataset="twitter2017", run_dir=str(tmp_path / "run"),
                      model=CoMIPNConfig(text_model="nowhere", region_weight=1.0))
    with pytest.raises(FileNotFoundError, match=f"{root / 'twitter2017' / 'xml'}: no such folder"):
        load_run_data(cfg)
    result = CliRunner().invoke(main, ["--data-root", str(root), "--dataset", "twitter2017", "--text-model", "nowhere",
                                       "--region-weight", "1", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and f"{root / 'twitter2017' / 'xml'}: no such folder" in result.output
    assert not (tmp_path / "run").exists()
