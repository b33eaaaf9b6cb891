"""The frozen CLIP tower and its on-disk feature cache (random ViT-B-32 weights, Pillow-made images)."""

from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from comipn_model.network.vision import CACHE_FORMAT, CACHE_SUFFIX, FeatureCache, VisionTower, vision_dims
from comipn_model.data.features import ImageFeatures, stack_visual


@pytest.fixture(scope="module")
def tower():
    return VisionTower("ViT-B-32", None, device="cpu")


def make_image(path, color, size=(64, 48)):
    Image.new("RGB", size, color).save(path)
    return path


def test_vision_dims_from_config():
    assert vision_dims("ViT-B-32") == (12, 768, 49)
    assert vision_dims("ViT-B-16") == (12, 768, 196)
    with pytest.raises(ValueError, match="unknown CLIP model"):
        vision_dims("no-such-model")


def test_tower_is_frozen_and_gives_every_block(tower, tmp_path):
    img = Image.open(make_image(tmp_path / "a.png", (200, 30, 30)))
    feats = tower([img.convert("RGB")])[0]
    assert feats.cls.shape == (12, 768) and feats.patches.shape == (49, 768)
    assert not any(p.requires_grad for p in tower.visual.parameters())
    assert not torch.allclose(feats.cls[0], feats.cls[-1])  # different blocks, different states


def test_second_pass_reads_the_cache(tower, tmp_path):
    paths = [make_image(tmp_path / f"{i}.png", (40 * i, 100, 200 - 30 * i)) for i in range(3)]
    garbage = tmp_path / "broken.jpg"
    garbage.write_bytes(b"not an image at all")
    cache = FeatureCache(tmp_path / "cache", tower)
    first = cache.get_many(paths + [tmp_path / "missing.jpg", garbage, None])
    assert cache.tower_calls == 1  # one batched run for all misses
    assert [f is None for f in first] == [False, False, False, True, True, True]
    assert all(f.cls.dtype == torch.float32 for f in first[:3])
    second = cache.get_many(paths)
    assert cache.tower_calls == 1 and cache.hits == 3
    for a, b in zip(first, second):
        assert torch.equal(a.cls, b.cls) and torch.equal(a.patches, b.patches)
    # stored in fp16: close to a fresh tower run
    fresh = tower([Image.open(paths[0]).convert("RGB")])[0]
    assert torch.allclose(fresh.cls, second[0].cls, atol=1e-2, rtol=1e-2)
    # a new cache object over the same folder (a second epoch, a new process) runs nothing either
    again = FeatureCache(tmp_path / "cache", tower)
    again.get_many(paths)
    assert again.tower_calls == 0


def test_filling_on_io_threads_gives_the_one_thread_features(tower, tmp_path):
    """Several batches decoded and preprocessed on threads one batch ahead, written behind: the same
    features, in input order, as one thread; a repeated image is computed once."""
    paths = [make_image(tmp_path / f"{i}.png", (25 * i, 90, 240 - 20 * i), size=(64 + 8 * i, 48)) for i in range(7)]
    inputs = paths + [paths[2], tmp_path / "missing.png"]
    one = FeatureCache(tmp_path / "one", tower, batch_size=2, io_threads=1).get_many(inputs)
    many = FeatureCache(tmp_path / "many", tower, batch_size=2, io_threads=4)
    threaded = many.get_many(inputs)
    assert many.tower_calls == 4 and many.misses == 7  # 7 distinct images in batches of 2
    assert threaded[-1] is None and one[-1] is None
    for a, b in zip(one[:-1], threaded[:-1]):
        assert torch.equal(a.cls, b.cls) and torch.equal(a.patches, b.patches)
    assert torch.equal(threaded[2].cls, threaded[7].cls)
    assert len(list((tmp_path / "many").rglob("*.safetensors"))) == 7  # every entry written
    reread = FeatureCache(tmp_path / "many", tower)
    reread.get_many(paths)
    assert reread.tower_calls == 0 and reread.hits == 7  # and every entry reads back


def test_changed_bytes_or_model_id_miss_the_cache(tower, tmp_path):
    path = make_image(tmp_path / "x.png", (10, 20, 30))
    cache = FeatureCache(tmp_path / "cache", tower)
    before = cache.get(path)
    make_image(path, (250, 20, 30))  # same name, new content
    after = cache.get(path)
    assert cache.tower_calls == 2 and not torch.equal(before.cls, after.cls)
    for attr, value in [("model_name", "ViT-B-32-other"), ("weights_id", "ViT-B-32:other.pt"),
                        ("preprocessing_id", "0" * 16)]:
        other_tower = copy.copy(tower)
        setattr(other_tower, attr, value)
        other = FeatureCache(tmp_path / "cache", other_tower)
        other.get(path)
        assert other.tower_calls == 1, attr
    same = FeatureCache(tmp_path / "cache", tower)
    same.get(path)
    assert same.tower_calls == 0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong tensors", "pickle"])
def test_damaged_cache_entry_is_recomputed(tower, tmp_path, caplog, damage):
    path = make_image(tmp_path / "y.png", (1, 2, 3))
    cache = FeatureCache(tmp_path / "cache", tower)
    first = cache.get(path)
    entry = next((tmp_path / "cache").rglob(f"*{CACHE_SUFFIX}"))
    if damage == "garbage":
        entry.write_bytes(b"damaged")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:-100])
    elif damage == "wrong tensors":
        save_file({"cls": torch.zeros(3)}, entry)
    else:  # an entry of the old format (torch.save, a pickle) under the new name: never unpickled
        torch.save({"cls": first.cls.half(), "patches": first.patches.half()}, entry)
    with caplog.at_level("WARNING", logger="comipn_model.network.vision"):
        again = cache.get(path)
    assert again is not None and cache.tower_calls == 2
    assert torch.equal(again.cls, first.cls) and torch.equal(again.patches, first.patches)
    assert f"feature cache entry {entry} unreadable" in caplog.text
    assert cache.get(path) is not None and cache.tower_calls == 2  # rewritten whole: read back


def test_cache_entries_are_fp16_safetensors(tower, tmp_path):
    """One safetensors file per image (no pickle), holding fp16 ``cls`` / ``patches``; what a read
    gives back is the tower's output rounded to fp16, as the first call returned it."""
    path = make_image(tmp_path / "z.png", (90, 180, 40))
    cache = FeatureCache(tmp_path / "cache", tower)
    computed = cache.get(path)
    entries = list((tmp_path / "cache").rglob("*"))
    files = [e for e in entries if e.is_file()]
    assert len(files) == 1 and files[0].suffix == ".safetensors" and files[0] == cache._file(
        cache.key(path.read_bytes()))
    with safe_open(files[0], framework="pt") as f:
        assert sorted(f.keys()) == ["cls", "patches"] and f.metadata() == {"format": CACHE_FORMAT}
        stored = {k: f.get_tensor(k) for k in f.keys()}
    assert stored["cls"].dtype == stored["patches"].dtype == torch.float16
    fresh = tower([Image.open(path).convert("RGB")])[0]
    assert torch.equal(stored["cls"], fresh.cls.half()) and torch.equal(stored["patches"], fresh.patches.half())
    read = FeatureCache(tmp_path / "cache", tower).get(path)
    assert read.cls.dtype == torch.float32
    assert torch.equal(read.cls, fresh.cls.half().float()) and torch.equal(read.patches, fresh.patches.half().float())
    assert torch.equal(computed.cls, read.cls) and torch.equal(computed.patches, read.patches)
    assert files[0].read_bytes()[:2] != b"PK"  # not torch.save's zip


def test_stack_visual_masks_missing_images():
    f = ImageFeatures(cls=torch.ones(12, 8), patches=torch.full((4, 8), 2.0))
    visual = stack_visual([[f, None, f, f, f], [], [None, f]], num_images=4)
    assert visual.cls.shape == (3, 4, 12, 8) and visual.patches.shape == (3, 4, 4, 8)
    assert visual.mask.tolist() == [[True, False, True, True], [False] * 4, [False, True, False, False]]
    assert torch.all(visual.cls[0, 1] == 0) and torch.all(visual.patches[2, 1] == 2)
    assert stack_visual([[None], []], num_images=2) is None
    empty = stack_visual([[None], []], num_images=2, dims=(12, 4, 8))
    assert empty.cls.shape == (2, 2, 12, 8) and not empty.mask.any()
    with pytest.raises(ValueError, match="do not match"):
        stack_visual([[f, ImageFeatures(torch.ones(12, 9), torch.ones(4, 9))]], num_images=2)


def _no_download(monkeypatch):
    """open_clip builds the architecture it was asked for, with random weights instead of the download."""
    import open_clip

    from comipn_prep import weights

    real = open_clip.create_model_and_transforms
    calls = []

    def build(name, pretrained=None, **kwargs):
        calls.append((name, pretrained, kwargs))
        return real(name, pretrained=None, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", build)
    monkeypatch.setattr(weights, "_in_hf_cache", lambda *_: True)
    return calls


def test_openai_weights_build_quickgelu_and_key_the_cache_apart(monkeypatch):
    import open_clip
    from open_clip.transformer import QuickGELU

    _no_download(monkeypatch)
    openai = VisionTower("ViT-B-32", "openai")
    acts = {type(m.mlp.gelu) for m in openai.blocks}
    assert acts == {QuickGELU}, acts  # open_clip 3.x alone would build nn.GELU here
    assert openai.quick_gelu and "quickgelu" in openai.identity
    # LAION's weights were trained with GELU: no QuickGELU forced on them
    laion = VisionTower("ViT-B-32", "laion2b_s34b_b79k")
    assert {type(m.mlp.gelu) for m in laion.blocks} == {torch.nn.GELU} and not laion.quick_gelu
    assert open_clip.get_pretrained_cfg("ViT-B-32", "openai")["quick_gelu"]
    cache_a = FeatureCache.__new__(FeatureCache)
    cache_b = FeatureCache.__new__(FeatureCache)
    cache_a.tower, cache_b.tower = openai, laion
    assert cache_a.key(b"same image") != cache_b.key(b"same image")


def test_a_local_file_of_openai_weights_builds_quickgelu(tmp_path, caplog):
    """--clip-pretrained FILE with the default ViT-B-32 built GELU for OpenAI's weights (a warning named
    -quickgelu); now the file's name, its Hub cache folder or the open_clip_config.json beside it says
    OpenAI, and QuickGELU is built; a file with no such sign keeps GELU, with the warning."""
    import json

    import open_clip
    from open_clip.transformer import QuickGELU

    from comipn_prep.weights import WeightsUnavailable, load_clip, openai_weights_sign

    hub = tmp_path / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "0123"
    beside = tmp_path / "downloaded"
    files = {"named": tmp_path / "vit-b-32-openai.pt", "hub": hub / "open_clip_pytorch_model.bin",
             "config": beside / "open_clip_pytorch_model.bin", "plain": tmp_path / "clip-weights.pt"}
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), files["plain"])
    for case in ("named", "hub", "config"):  # one file of 350 MB, seen under each name
        files[case].parent.mkdir(parents=True, exist_ok=True)
        files[case].symlink_to(files["plain"])
    (beside / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"quick_gelu": True}}))

    def activations(bundle):
        return {type(b.mlp.gelu) for b in bundle.model.visual.transformer.resblocks}

    bundle = load_clip("ViT-B-32", str(files["named"]))
    assert bundle.quick_gelu and activations(bundle) == {QuickGELU} and bundle.weights_id.endswith(":quickgelu")
    # the other signs, read without building the model again
    assert "models--timm--vit_base_patch32_clip_224.openai" in openai_weights_sign(files["hub"])
    assert "open_clip_config.json" in openai_weights_sign(files["config"])
    assert openai_weights_sign(files["plain"]) is None
    assert openai_weights_sign(tmp_path / "openai-fan" / "clip.pt") is None  # a folder's name says nothing
    with caplog.at_level("WARNING", logger="comipn_prep.weights"):
        plain = load_clip("ViT-B-32", str(files["plain"]))
    assert not plain.quick_gelu and activations(plain) == {torch.nn.GELU}
    assert "nothing in its name or folder says OpenAI" in caplog.text and "-quickgelu" in caplog.text
    # OpenAI's original TorchScript release holds code: refused with what to do instead
    scripted = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    with pytest.raises(WeightsUnavailable, match="TorchScript archive"):
        load_clip("ViT-B-32", str(scripted))


def test_same_named_weights_files_get_different_cache_keys(monkeypatch, tmp_path, caplog):
    calls = _no_download(monkeypatch)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "clip.pt").write_bytes(b"weights one")
    (tmp_path / "b" / "clip.pt").write_bytes(b"weights two")
    (tmp_path / "b" / "renamed.pt").write_bytes(b"weights one")
    with caplog.at_level("WARNING", logger="comipn_prep.weights"):
        towers = [VisionTower("ViT-S-32", str(tmp_path / sub / name))
                  for sub, name in [("a", "clip.pt"), ("b", "clip.pt"), ("b", "renamed.pt")]]
    assert [c[1] for c in calls] == [str(tmp_path / s / n) for s, n in [("a", "clip.pt"), ("b", "clip.pt"),
                                                                         ("b", "renamed.pt")]]
    keys = []
    for tower_ in towers:
        cache = FeatureCache.__new__(FeatureCache)
        cache.tower = tower_
        keys.append(cache.key(b"same image"))
    assert keys[0] != keys[1]  # same name, different content
    assert keys[0] == keys[2]  # same content, different name
    # nothing says OpenAI of these files: GELU as the model name says, and the user is told which rule applied
    assert sum("nothing in its name or folder says OpenAI" in r.getMessage() for r in caplog.records) == 3


def test_tensor_decoding_fills_the_same_entries(tower, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(64, 48), (50, 90), (33, 33)]):
        paths.append(tmp_path / f"{i}.{'png' if i == 2 else 'jpg'}")
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(paths[-1])
    garbage = tmp_path / "broken.jpg"
    garbage.write_bytes(b"\xff\xd8 not an image at all")
    inputs = paths + [garbage, tmp_path / "missing.jpg"]
    pil = FeatureCache(tmp_path / "pil", tower, batch_size=2, io_threads=1, progress=False).get_many(inputs)
    cache = FeatureCache(tmp_path / "ten", tower, batch_size=2, io_threads=1, progress=False, decode="tensor")
    ten = cache.get_many(inputs)
    assert [f is None for f in ten] == [f is None for f in pil] == [False, False, False, True, True]
    assert cache.tower_calls == 2 and cache.misses == 3
    for a, b in zip(pil[:3], ten[:3]):  # the same pixels into the same tower: the same fp16 entries
        assert torch.allclose(a.cls, b.cls, atol=1e-3) and torch.allclose(a.patches, b.patches, atol=1e-3)
    assert sorted(p.name for p in (tmp_path / "pil").rglob("*" + CACHE_SUFFIX)) == \
        sorted(p.name for p in (tmp_path / "ten").rglob("*" + CACHE_SUFFIX))
    with pytest.raises(ValueError, match="decode"):
        FeatureCache(tmp_path / "x", tower, decode="gpu")
