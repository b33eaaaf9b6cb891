"""The Co-MIPN network on the real MiniLM-L6 encoder: masks, padding, gradients, switches, decoding."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from comipn_model import CoMIPN, CoMIPNConfig, WordBatcher
from comipn_model.network.contrastive import info_nce
from comipn_model.network.crf import is_valid_bio
from comipn_model.data.features import ImageFeatures, stack_visual
from comipn_model.network.vision import vision_dims
from comipn_prep.conll import read_conll


@pytest.fixture(scope="module")
def minilm(minilm_path):
    from comipn_model.network.text_encoder import load_text_encoder

    return load_text_encoder(minilm_path)


@pytest.fixture(scope="module")
def tweets(twitter_data):
    return list(read_conll(twitter_data / "twitter2017" / "train.txt"))[:16]


def build(minilm, minilm_path, **switches) -> CoMIPN:
    encoder, tokenizer = minilm
    config = CoMIPNConfig(text_model=minilm_path, clip_pretrained=None, **switches)
    torch.manual_seed(0)
    return CoMIPN(config, encoder=copy.deepcopy(encoder), tokenizer=tokenizer)


def features(seed: int) -> ImageFeatures:
    gen = torch.Generator().manual_seed(seed)
    blocks, width, patches = vision_dims("ViT-B-32")
    return ImageFeatures(cls=torch.randn(blocks, width, generator=gen),
                         patches=torch.randn(patches, width, generator=gen))


def encode(model, tweets, images=None, max_seq=128):
    batcher = WordBatcher(model.tokenizer, model.config.labels, max_seq)
    visual = None if images is None else stack_visual(images, model.config.num_images)
    return batcher.encode([t.tokens for t in tweets], [t.labels for t in tweets], visual)


ALL_ON = dict(use_prompt=True, use_dynamic_matching=True, use_contrastive=True)
ALL_OFF = dict(use_prompt=False, use_dynamic_matching=False, use_contrastive=False)


@pytest.mark.parametrize("switches", [ALL_ON, dict(ALL_ON, separate_path_encoders=True), ALL_OFF],
                         ids=["all-on", "separate", "text-only"])
def test_padding_never_changes_real_tokens(minilm, minilm_path, tweets, switches):
    model = build(minilm, minilm_path, **switches).eval()
    short, long = sorted(tweets[:6], key=len)[0], sorted(tweets[:6], key=len)[-1]
    imgs = [[features(1), None, features(2)], [features(3), features(4)]]
    alone = encode(model, [short], imgs[:1])
    padded = encode(model, [short, long], imgs)
    assert padded.input_ids.shape[1] > alone.input_ids.shape[1]
    with torch.no_grad():
        a = model(alone).emissions[0, : len(short)]
        p = model(padded).emissions[0, : len(short)]
    assert torch.allclose(a, p, atol=1e-4), (a - p).abs().max()
    assert model.decode(alone)[0] == model.decode(padded)[0]


def test_example_without_image_equals_the_text_only_path(minilm, minilm_path, tweets):
    model = build(minilm, minilm_path, **ALL_ON).eval()
    batch = encode(model, tweets[:2], [[features(1), features(2)], []])
    assert batch.visual.mask[1].sum() == 0
    text_only = copy.copy(batch)
    text_only.visual = None  # None: the model runs the text-only path alone
    with torch.no_grad():
        full = model(batch).emissions
        plain = model(text_only).emissions
    assert torch.allclose(full[1], plain[1], atol=1e-5), (full[1] - plain[1]).abs().max()
    assert not torch.allclose(full[0], plain[0], atol=1e-3)  # the imaged example does see its picture
    assert model.decode(batch)[1] == model.decode(text_only)[1]


def test_contrastive_alone_tags_without_reading_the_picture(minilm, minilm_path, tweets):
    """Contrastive aggregation alone is a training loss only: the tags are the text path's whatever the
    pictures (why it cannot carry the image on a probe whose text does not predict its picture)."""
    model = build(minilm, minilm_path, use_prompt=False, use_dynamic_matching=False, use_contrastive=True).eval()
    pictured = encode(model, tweets[:3], [[features(i), features(i + 10)] for i in range(3)])
    other = encode(model, tweets[:3], [[features(i + 50)] for i in range(3)])
    text_only = copy.copy(pictured)
    text_only.visual = None
    with torch.no_grad():
        a, b, plain = model(pictured), model(other), model(text_only)
    assert torch.equal(a.emissions, b.emissions) and torch.equal(a.emissions, plain.emissions)
    assert a.contrastive_loss is not None and not torch.equal(a.contrastive_loss, b.contrastive_loss)  # it sees them


@pytest.mark.parametrize("separate", [False, True], ids=["shared", "separate"])
def test_one_backward_reaches_every_trainable_parameter(minilm, minilm_path, tweets, separate):
    model = build(minilm, minilm_path, **ALL_ON, separate_path_encoders=separate).train()
    batch = encode(model, tweets[:4], [[features(i), features(i + 10), None] for i in range(4)])
    out = model(batch)
    assert out.contrastive_loss is not None and out.crf_loss is not None
    out.loss.backward()
    dead = [name for name, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert dead == []
    groups = model.param_groups()
    grouped = [id(p) for ps in groups.values() for p in ps]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters() if p.requires_grad}
    assert groups["crf"] and groups["new"] and groups["text_encoder"]


def counts(model):
    return model.parameter_counts()


def test_each_switch_removes_its_modules_and_parameters(minilm, minilm_path):
    full = build(minilm, minilm_path, **ALL_ON)
    encoder = sum(p.numel() for p in minilm[0].parameters())
    for switch, attr in [("use_prompt", "prompts"), ("use_dynamic_matching", "matching"),
                         ("use_contrastive", "contrastive")]:
        model = build(minilm, minilm_path, **dict(ALL_ON, **{switch: False}))
        assert getattr(model, attr) is None and getattr(full, attr) is not None
        removed = sum(p.numel() for p in getattr(full, attr).parameters())
        gate_change = counts(full)["total"] - counts(model)["total"] - removed
        if switch == "use_dynamic_matching":  # the contrastive pool then learns its own text relevance
            gate_change += sum(p.numel() for m in (model.contrastive.query, model.contrastive.image_key)
                               for p in m.parameters())
        # the token gate loses one path's score layer with a visual path, nothing otherwise
        assert gate_change == (0 if switch == "use_contrastive" else model.encoders["text"].config.hidden_size + 1)
    plain = build(minilm, minilm_path, **ALL_OFF)
    assert plain.gate is None and plain.prompts is None and plain.matching is None and plain.contrastive is None
    head = sum(p.numel() for p in plain.emission.parameters()) + sum(p.numel() for p in plain.crf.parameters())
    assert counts(plain)["total"] == encoder + head
    assert [name for name, _ in plain.named_children()] == ["encoders", "dropout", "emission", "crf"]
    separate = build(minilm, minilm_path, **ALL_ON, separate_path_encoders=True)
    assert counts(separate)["text_encoder"] == 3 * encoder
    assert counts(full)["text_encoder"] == encoder


def test_decode_lengths_truncation_and_valid_bio(minilm, minilm_path, tweets):
    model = build(minilm, minilm_path, **ALL_ON).eval()
    long = max(tweets, key=len)
    batch = encode(model, [long, tweets[0]], [[features(1)], [features(2)]], max_seq=8)
    assert batch.truncated_words > 0
    tags = model.decode(batch)
    assert [len(t) for t in tags] == [len(long), len(tweets[0])]
    kept = int(batch.word_mask[0].sum())
    assert all(t == "O" for t in tags[0][kept:])
    assert all(is_valid_bio(t) for t in tags)
    # every word cut off (max_seq 2 leaves only [CLS] [SEP]): all O, loss still finite
    empty = encode(model, tweets[:2], [[features(1)], [features(2)]], max_seq=2)
    assert not empty.word_mask.any()
    assert model.decode(empty) == [["O"] * len(t) for t in tweets[:2]]
    assert torch.isfinite(model(empty).loss)


def test_no_visual_input_and_no_labels(minilm, minilm_path, tweets):
    model = build(minilm, minilm_path, **ALL_ON).eval()
    batcher = WordBatcher(model.tokenizer, model.config.labels)
    out = model(batcher.encode([t.tokens for t in tweets[:3]]))
    assert out.loss is None and out.crf_loss is None and out.contrastive_loss is None
    assert out.emissions.shape == (3, max(len(t) for t in tweets[:3]), len(model.config.labels))
    one_image = encode(model, tweets[:3], [[features(1)], [], [None]])
    assert model(one_image).contrastive_loss is None  # fewer than two imaged examples
    with pytest.raises(ValueError, match="do not match"):
        bad = encode(model, tweets[:1], [[ImageFeatures(torch.zeros(12, 512), torch.zeros(49, 512))]])
        model(bad)


def test_contrastive_loss_is_symmetric_infonce():
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(8, 16, generator=gen)
    image = text + 0.1 * torch.randn(8, 16, generator=gen)
    scale = torch.tensor(2.0)
    matched = info_nce(text, image, scale)
    shuffled = info_nce(text, image[torch.roll(torch.arange(8), 1)], scale)
    assert matched < shuffled
    assert torch.allclose(info_nce(text, image, scale), info_nce(image, text, scale))
    # the symmetric loss is the mean of the two directions' cross-entropies
    normalize = torch.nn.functional.normalize
    logits = scale.exp() * normalize(text, dim=-1) @ normalize(image, dim=-1).t()
    one_way = torch.nn.functional.cross_entropy(logits, torch.arange(8))
    other_way = torch.nn.functional.cross_entropy(logits.t(), torch.arange(8))
    assert torch.allclose(matched, (one_way + other_way) / 2)


@pytest.mark.parametrize("on", [[1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 1], [0] * 6])
def test_masked_infonce_equals_infonce_on_the_selected_rows(on):
    """The compiled step's InfoNCE (every row, masked) equals InfoNCE on the rows selected, in value and
    gradients; with under two rows it stays finite and its gradients zero."""
    from comipn_model.network.contrastive import masked_info_nce

    gen = torch.Generator().manual_seed(len(on) + sum(on))
    text = torch.randn(6, 16, generator=gen, requires_grad=True)
    image = torch.randn(6, 16, generator=gen, requires_grad=True)
    scale = torch.tensor(2.0)
    rows = torch.tensor(on, dtype=torch.bool)
    masked = masked_info_nce(text, image, scale, rows)
    masked.backward()
    grads = text.grad.clone(), image.grad.clone()
    assert torch.isfinite(masked) and all(torch.isfinite(g).all() for g in grads)
    if sum(on) < 2:
        assert all(not g[~rows].any() for g in grads)
        return
    text.grad = image.grad = None
    selected = info_nce(text[rows], image[rows], scale)
    selected.backward()
    assert torch.allclose(masked, selected, atol=1e-6)
    assert torch.allclose(grads[0], text.grad, atol=1e-6) and torch.allclose(grads[1], image.grad, atol=1e-6)


def test_text_encoder_loaders_fail_fast_and_build_random_configs(minilm_path, tmp_path, tweets):
    import json
    import time

    from comipn_model.network.prompts import layer_to_block
    from comipn_model.network.text_encoder import TextEncoderUnavailable, load_text_encoder, make_random_bert_base

    with pytest.raises(TextEncoderUnavailable, match="--text-model"):
        load_text_encoder(str(tmp_path / "no-such-folder"))
    start = time.monotonic()
    with pytest.raises(TextEncoderUnavailable, match="--text-model"):
        load_text_encoder("bert-base-uncased")  # the hub is offline in tests: fail, never wait
    assert time.monotonic() - start < 30
    # paper-size folder: BERT-base config with MiniLM's tokenizer, random weights, no download
    folder = make_random_bert_base(tmp_path / "bert-base", minilm_path)
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 12
    # a tiny random config in the same way drives the whole model
    tiny = tmp_path / "tiny"
    make_random_bert_base(tiny, minilm_path)
    cfg = json.loads((tiny / "config.json").read_text())
    cfg.update(hidden_size=32, num_hidden_layers=5, num_attention_heads=4, intermediate_size=64)
    (tiny / "config.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model = CoMIPN(CoMIPNConfig(text_model=str(tiny), random_init=True, clip_pretrained=None, aux_k=1))
    assert model.encoders["text"].config.num_hidden_layers == 5
    assert model.prompts.blocks.tolist() == layer_to_block(5, 12) == [1, 4, 6, 9, 11]
    batch = encode(model, tweets[:3], [[features(1), features(2), features(3)], [None, features(4)], []])
    assert batch.visual.cls.shape[1] == 2  # aux_k = 1: the global image and one crop
    out = model(batch)
    out.loss.backward()
    assert out.emissions.shape == (3, max(len(t) for t in tweets[:3]), len(model.config.labels))


def test_masked_prefix_equals_no_prefix_and_an_open_one_learns(minilm, tweets):
    from comipn_model.network.text_encoder import encode as run_encoder

    encoder, tokenizer = minilm
    encoder = copy.deepcopy(encoder).eval()
    batch = WordBatcher(tokenizer, ["O"]).encode([t.tokens for t in tweets[:3]])
    args = (encoder, batch.input_ids, batch.attention_mask, batch.token_type_ids)
    layers, hidden = encoder.config.num_hidden_layers, encoder.config.hidden_size
    prefix = [torch.randn(3, 5, hidden, requires_grad=True) for _ in range(layers)]
    plain = run_encoder(*args)
    masked = run_encoder(*args, prefix, torch.zeros(3, 5, dtype=torch.bool))
    # the same up to float rounding (a different key length changes sdpa's summation blocks)
    assert torch.allclose(plain, masked, atol=1e-5, rtol=0), (plain - masked).abs().max()
    opened = run_encoder(*args, prefix, torch.ones(3, 5, dtype=torch.bool))
    assert not torch.allclose(plain, opened, atol=1e-3)
    opened.sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in prefix)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, make_tiny_encoder):
    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder", dropout=0.0))


@pytest.mark.parametrize("switches", [ALL_ON, dict(ALL_ON, use_dynamic_matching=False)],
                         ids=["all-on", "no-matching"])
def test_infonce_cannot_read_the_image_through_the_text_side(tiny_encoder, tweets, switches):
    """One tweet, 8 copies, 8 different pictures: a text side that sees only the text gives the same
    vector for all 8, so InfoNCE cannot go below ln 8 however long it trains (it fell to 0.000 when the
    fused [CLS], which reads the pictures through the prefix, was the text side)."""
    import math

    torch.manual_seed(0)
    model = CoMIPN(CoMIPNConfig(text_model=tiny_encoder, random_init=True, clip_pretrained=None,
                                dropout=0.0, **switches))
    batch = encode(model, [tweets[0]] * 8, [[features(i), features(100 + i)] for i in range(8)])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = model(batch).contrastive_loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = float(model.eval()(batch).contrastive_loss)
    assert final >= math.log(8) - 0.05, (first, final)


def test_head_and_losses_run_in_fp32_under_bf16_autocast(minilm, minilm_path, tweets):
    model = build(minilm, minilm_path, **ALL_ON).train()
    batch = encode(model, tweets[:4], [[features(i), features(i + 10)] for i in range(4)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert out.emissions.dtype == torch.float32
    assert out.crf_loss.dtype == out.contrastive_loss.dtype == out.loss.dtype == torch.float32
    out.loss.backward()


def test_an_image_irrelevant_to_the_text_fades_to_no_input_on_the_matched_path(minilm, minilm_path, tweets):
    """Relevance weighs the matched prefix's attention: zero relevance leaves (almost) the text-only
    states, not constant prefix tokens that soak up attention."""
    model = build(minilm, minilm_path, use_prompt=False, use_dynamic_matching=True, use_contrastive=False).eval()
    batch = encode(model, tweets[:3], [[features(i), features(i + 10)] for i in range(3)])
    text_only = copy.copy(batch)
    text_only.visual = None
    with torch.no_grad():
        plain = model(text_only).emissions
        relevant = model(batch).emissions
        for layer in (model.matching.patch_proj,):  # every patch projects to 0: cosine 0, relevance 0
            layer.weight.zero_()
            layer.bias.zero_()
        faded = model(batch).emissions
    seen, left = (relevant - plain).abs().max(), (faded - plain).abs().max()
    assert left < 2e-3 and seen > 20 * left, (seen, left)


def test_relevance_bias_on_the_prefix_scales_its_attention(minilm, tweets):
    """A log-relevance bias equal for every prefix token of one image: log 1 = no change, a very
    negative one = the prefix masked."""
    from comipn_model.network.text_encoder import encode as run_encoder

    encoder, tokenizer = minilm
    encoder = copy.deepcopy(encoder).eval()
    batch = WordBatcher(tokenizer, ["O"]).encode([t.tokens for t in tweets[:3]])
    args = (encoder, batch.input_ids, batch.attention_mask, batch.token_type_ids)
    layers, hidden = encoder.config.num_hidden_layers, encoder.config.hidden_size
    prefix = [torch.randn(3, 5, hidden) for _ in range(layers)]
    mask = torch.ones(3, 5, dtype=torch.bool)
    with torch.no_grad():
        plain = run_encoder(*args)
        opened = run_encoder(*args, prefix, mask)
        zero_bias = run_encoder(*args, prefix, mask, [torch.zeros(3, 5)] * layers)
        faded = run_encoder(*args, prefix, mask, [torch.full((3, 5), -60.0)] * layers)
        halfway = run_encoder(*args, prefix, mask, [torch.full((3, 5), -2.0)] * layers)
    assert torch.allclose(opened, zero_bias, atol=1e-5)
    assert torch.allclose(faded, plain, atol=1e-5)
    assert (halfway - plain).abs().mean() < (opened - plain).abs().mean()


def test_fresh_model_starts_with_open_matched_prompts(minilm, minilm_path, tweets):
    """Every image's matched prompts start open (relevance well above the ~0.07 of random projections,
    whose log-weight kept the matched path shut on the probe)."""
    model = build(minilm, minilm_path, **ALL_ON).eval()
    batch = encode(model, tweets[:3], [[features(i), features(i + 10)] for i in range(3)])
    with torch.no_grad():
        encoded = model._encode(batch, model._visual(batch))
    assert encoded.relevance[:, :2].min() > 0.5 and (encoded.relevance[:, 2:] == 0).all()


def test_rows_whose_prefix_is_masked_need_no_prefix_states(minilm, tweets):
    """The one-call multi-path encoder gives prefix states for the visual paths' rows only: the text
    path's masked prefix is never projected, and its rows come out as with zero states."""
    from comipn_model.network.text_encoder import encode as encode_text

    encoder, tokenizer = minilm
    encoder = encoder.eval()
    batch = WordBatcher(tokenizer, CoMIPNConfig().labels).encode([t.tokens for t in tweets[:2]] * 2)
    gen = torch.Generator().manual_seed(0)
    layers, hidden = encoder.config.num_hidden_layers, encoder.config.hidden_size
    states = [torch.randn(2, 5, hidden, generator=gen) for _ in range(layers)]
    mask = torch.tensor([[False] * 5] * 2 + [[True] * 5] * 2)
    args = (batch.input_ids, batch.attention_mask, batch.token_type_ids)
    with torch.no_grad():
        full = encode_text(encoder, *args, [torch.cat([torch.zeros(2, 5, hidden), s]) for s in states], mask)
        skipped = encode_text(encoder, *args, states, mask)
    assert torch.allclose(full, skipped, atol=1e-5)
    with pytest.raises(ValueError, match="must be masked"):
        encode_text(encoder, *args, states, torch.ones(4, 5, dtype=torch.bool))


def test_prefix_reaches_an_encoder_whose_cache_argument_is_past_key_values(minilm, tweets):
    """Earlier transformers 5 releases (5.0 and 5.17 were checked) name BERT's cache ``past_key_values``,
    later ones ``cache``; a prefix handed over under the wrong name is dropped while its mask stays, and
    the attention fails (as it did on the GPU machine's transformers 5.17)."""
    import inspect

    from comipn_model.network.text_encoder import encode as encode_text

    encoder, tokenizer = minilm
    encoder = encoder.eval()
    own_name = "cache" if "cache" in inspect.signature(encoder.forward).parameters else "past_key_values"

    class OlderSignature(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.encoder, self.config = inner, inner.encoder, inner.config

        def forward(self, input_ids, attention_mask, token_type_ids, position_ids, past_key_values=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                              position_ids=position_ids, **{own_name: past_key_values})

    batch = WordBatcher(tokenizer, CoMIPNConfig().labels).encode([t.tokens for t in tweets[:2]])
    args = (batch.input_ids, batch.attention_mask, batch.token_type_ids)
    gen = torch.Generator().manual_seed(0)
    layers, hidden = encoder.config.num_hidden_layers, encoder.config.hidden_size
    states = [torch.randn(2, 3, hidden, generator=gen) for _ in range(layers)]
    bias = [torch.randn(2, 3, generator=gen) for _ in range(layers)]
    with torch.no_grad():
        plain = encode_text(encoder, *args)
        for extra in ({}, {"prefix_bias": bias}):
            ours = encode_text(encoder, *args, states, **extra)
            older = encode_text(OlderSignature(encoder), *args, states, **extra)
            assert torch.allclose(ours, older, atol=1e-6)
            assert not torch.allclose(ours, plain, atol=1e-3)  # the prefix was attended to


def test_with_the_tanh_gate_a_fresh_model_tags_as_text_only_and_one_step_opens_the_picture(minilm, minilm_path,
                                                                                        tweets):
    model = build(minilm, minilm_path, **ALL_ON, path_gate="tanh")
    batch = encode(model, tweets[:4], [[features(i), features(i + 10)] for i in range(4)])
    text_only = copy.copy(batch)
    text_only.visual = None
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(batch).emissions, model(text_only).emissions, atol=1e-5)
    model.train()
    optimizer = torch.optim.Adam(model.gate.parameters(), lr=1e-2)
    model(batch).loss.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        moved = (model(batch).emissions - model(text_only).emissions).abs().max()
    assert moved > 1e-3, moved


def test_the_contrastive_temperature_starts_where_the_config_says(minilm, minilm_path):
    for temperature in (0.07, 0.179):
        model = build(minilm, minilm_path, **ALL_ON, contrastive_temperature=temperature)
        assert math.isclose(model.contrastive.logit_scale.exp().item(), 1 / temperature, rel_tol=1e-5)
    with pytest.raises(ValueError, match="contrastive_temperature must lie in"):
        CoMIPNConfig(contrastive_temperature=2.0)
