"""comipn_prep.model_refs: a model reference is a path on disk, a path that is not there, or a Hub id."""

from __future__ import annotations

import pytest

from comipn_prep.model_refs import HUB, MISSING, PATH, classify, hub_offline, no_such_folder, offline_why


def test_what_exists_is_a_path_even_when_it_reads_like_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    ref = classify("owner/name")
    assert (ref.kind, ref.path.resolve(), ref.is_hub) == (PATH, tmp_path / "owner" / "name", False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert classify("~/owner").path == tmp_path / "owner"  # ~ expanded: the user typed it


@pytest.mark.parametrize("text", ["./bert", "~/no/such", "/abs/bert", "a/b/c", "a//b", "../bert", "a/./b",
                                  "win\\bert", "name with space", ""])
def test_what_only_reads_as_a_path_and_is_not_there_is_missing(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    assert classify(text).kind == MISSING


@pytest.mark.parametrize("text", ["bert-base-uncased", "openai/clip-vit-base-patch32", "org/model.v2"])
def test_a_bare_name_or_owner_name_not_on_disk_is_a_hub_id(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    ref = classify(text)
    assert ref.kind == HUB and ref.is_hub and ref.path is None


def test_the_missing_message_says_where_it_looked_and_which_flag_takes_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = no_such_folder(classify("./bert"), "--text-model")
    assert message == (f"./bert: no such folder or file ({tmp_path / 'bert'} does not exist); "
                       f"pass an existing local folder with --text-model")


@pytest.mark.parametrize("value, offline", [("1", True), ("True", True), (" yes ", True), ("on", True),
                                            ("0", False), ("", False), ("no", False)])
def test_hub_offline_reads_the_environment(monkeypatch, value, offline):
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is offline
    assert (offline_why() == f"offline: HF_HUB_OFFLINE={value.strip()}") is offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("YOLO_OFFLINE", value)
    assert hub_offline() is False and hub_offline("YOLO_OFFLINE") is offline  # only the names asked about
