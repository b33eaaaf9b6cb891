"""The text encoder families (BERT, RoBERTa, XLM-R): ``encode()`` computes what the encoder's own forward
computes (positions numbered as its own embeddings number them, left padding included), a fully masked
prefix is no prefix, words keep their word-start marker, and what cannot work is refused before any load."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

from comipn_prep.conll import read_conll
from comipn_model.data.batch import WordBatcher, splits_words_as_text
from comipn_model.network.text_encoder import (TextEncoderUnavailable, check_text_encoder, encode, load_text_encoder,
                                               positions, usable_positions)

FAMILIES = ["bert", "roberta", "xlm-roberta"]
# Tolerance of the issue: the same computation, up to float rounding (sdpa's blocks differ with the key length).
ATOL = 1e-5


@pytest.fixture(scope="module")
def folders(tmp_path_factory, make_tiny_family, minilm_path) -> dict[str, str]:
    """BERT: the real pretrained MiniLM-L6; RoBERTa and XLM-R: tiny random-weight ones."""
    base = tmp_path_factory.mktemp("families")
    return {"bert": minilm_path, **{f: str(make_tiny_family(base / f, f)) for f in FAMILIES[1:]}}


@pytest.fixture(scope="module")
def encoders(folders) -> dict:
    loaded = {}
    for family, folder in folders.items():
        torch.manual_seed(0)
        encoder, tokenizer = load_text_encoder(folder, random_init=family != "bert")
        loaded[family] = (encoder.eval(), tokenizer)
    return loaded


@pytest.fixture(scope="module")
def tweets(sample_root):
    return [t.tokens for t in read_conll(sample_root / "sample" / "train.txt").tweets[:6]]


def batch_of(tokenizer, words, side: str = "right"):
    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = side
    return WordBatcher(tokenizer, ["O"]).encode(words)


def own_forward(encoder, batch) -> torch.Tensor:
    """The encoder's own forward: its embeddings number the positions themselves."""
    return encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   token_type_ids=batch.token_type_ids).last_hidden_state


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", ["right", "left"])
@torch.no_grad()
def test_encode_equals_the_encoders_own_forward(encoders, tweets, family, side):
    encoder, tokenizer = encoders[family]
    batch = batch_of(tokenizer, tweets, side)
    assert (batch.attention_mask == 0).any()  # some row is padded
    real = batch.attention_mask.bool()
    diff = (encode(encoder, batch.input_ids, batch.attention_mask, batch.token_type_ids) - own_forward(encoder, batch))
    assert diff[real].abs().max() <= ATOL
    # and the embeddings the dynamic matching reads are the encoder's own too
    ours = encoder.embeddings(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids,
                              position_ids=positions(encoder, batch.input_ids))
    theirs = encoder.embeddings(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("family", FAMILIES[1:])
@torch.no_grad()
def test_roberta_family_positions_ignore_padding_on_either_side(encoders, tweets, family):
    """The first real token is at padding_idx + 1 and pads at padding_idx, whichever side they are on: a
    left-padded tweet is encoded as it is alone."""
    encoder, tokenizer = encoders[family]
    pad = encoder.config.pad_token_id
    for side in ("right", "left"):
        batch = batch_of(tokenizer, tweets, side)
        ids, real = positions(encoder, batch.input_ids), batch.attention_mask.bool()
        lengths = real.sum(dim=1)
        for row in range(len(tweets)):
            assert ids[row][real[row]].tolist() == list(range(pad + 1, pad + 1 + int(lengths[row])))
            assert (ids[row][~real[row]] == pad).all()
        states = encode(encoder, batch.input_ids, batch.attention_mask, batch.token_type_ids)
        for row in range(len(tweets)):
            alone = batch_of(tokenizer, [tweets[row]])
            single = encode(encoder, alone.input_ids, alone.attention_mask, alone.token_type_ids)[0]
            assert (states[row][real[row]] - single).abs().max() <= ATOL


@pytest.mark.parametrize("family", FAMILIES)
def test_a_fully_masked_prefix_equals_no_prefix(encoders, tweets, family):
    encoder, tokenizer = encoders[family]
    batch = batch_of(tokenizer, tweets[:4], "left" if family == "roberta" else "right")
    args = (encoder, batch.input_ids, batch.attention_mask, batch.token_type_ids)
    layers, hidden = encoder.config.num_hidden_layers, encoder.config.hidden_size
    torch.manual_seed(1)
    prefix = [torch.randn(4, 5, hidden, requires_grad=True) for _ in range(layers)]
    real = batch.attention_mask.bool()
    with torch.no_grad():
        plain = encode(*args)
        masked = encode(*args, prefix, torch.zeros(4, 5, dtype=torch.bool))
        biased = encode(*args, prefix, torch.zeros(4, 5, dtype=torch.bool), [torch.randn(4, 5) for _ in range(layers)])
        # prefixes for the last two rows only; the first two are the text path
        rows = encode(*args, [p[2:] for p in prefix], torch.tensor([[0] * 5, [0] * 5, [1] * 5, [1] * 5]).bool())
    assert (masked - plain)[real].abs().max() <= ATOL
    assert (biased - plain)[real].abs().max() <= ATOL
    assert (rows[:2] - plain[:2])[real[:2]].abs().max() <= ATOL
    if family != "bert":  # for BERT: tests/model/network/test_model.py
        opened = encode(*args, prefix, torch.ones(4, 5, dtype=torch.bool))
        assert (opened - plain)[real].abs().max() > 1e-3  # an open prefix changes the states, and learns
        opened.sum().backward()
        assert all(p.grad is not None and torch.any(p.grad != 0) for p in prefix)


@pytest.mark.parametrize("family, marker", [("roberta", "Ġ"), ("xlm-roberta", "▁")])
def test_every_word_starts_with_the_word_start_marker(encoders, folders, family, marker):
    from transformers import AutoTokenizer

    _, tokenizer = encoders[family]
    words = ["RT", "@user", "Collins"]
    batch = WordBatcher(tokenizer, ["O"]).tokenise([words])[0]
    tokens = tokenizer.convert_ids_to_tokens(batch.input_ids)
    firsts = [tokens[batch.word_ids.index(w)] for w in range(len(words))]
    assert all(t.startswith(marker) for t in firsts), tokens
    assert splits_words_as_text(tokenizer)
    # as saved: RoBERTa's byte-level BPE with the class default add_prefix_space=False reads each word as if
    # it went on the previous one; the batcher refuses it and says how to load it
    raw = AutoTokenizer.from_pretrained(folders[family])
    if family == "roberta":
        assert not splits_words_as_text(raw)
        with pytest.raises(ValueError, match="add_prefix_space=True"):
            WordBatcher(raw, ["O"])
    else:
        assert splits_words_as_text(raw)  # SentencePiece marks every word itself


def test_max_seq_is_checked_against_the_position_table(folders):
    from transformers import BertConfig, RobertaConfig, XLMRobertaConfig

    # roberta-large / xlm-roberta-large: 514 positions, 512 usable; bert-base: 512
    assert usable_positions(RobertaConfig(max_position_embeddings=514)) == 512
    assert usable_positions(XLMRobertaConfig(max_position_embeddings=514)) == 512
    assert usable_positions(BertConfig()) == 512
    check_text_encoder(folders["roberta"], random_init=True, max_seq=128)  # 130 - 2 positions
    with pytest.raises(ValueError, match=r"--max-seq 129 .* 128 positions .*--max-seq 128 or less"):
        check_text_encoder(folders["roberta"], random_init=True, max_seq=129)
    with pytest.raises(ValueError, match="--max-seq 513 .* 512 positions"):
        check_text_encoder(folders["bert"], random_init=True, max_seq=513)


def test_max_seq_too_big_exits_before_any_model_load(folders, sample_root, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from comipn_model.cli import main
    from comipn_model.training import loop

    monkeypatch.setattr(loop, "build_model", lambda *a, **k: pytest.fail("a model was loaded before the checks"))
    result = CliRunner().invoke(main, [
        "--data-root", str(sample_root), "--dataset", "sample", "--text-model", folders["xlm-roberta"],
        "--random-init", "--max-seq", "200", "--device", "cpu", "--run-dir", str(tmp_path / "run"),
        "--no-use-prompt", "--no-use-dynamic-matching", "--no-use-contrastive"])
    assert result.exit_code == 2, result.output
    assert "--max-seq 200" in result.output and "--max-seq 128 or less" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("config_name", ["DistilBertConfig", "GPT2Config"])
def test_an_unsupported_architecture_is_refused_naming_the_supported_ones(config_name, minilm_path, tmp_path):
    import transformers

    folder = tmp_path / config_name
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (Path(minilm_path) / name).is_file():
            shutil.copyfile(Path(minilm_path) / name, folder / name)
    config = getattr(transformers, config_name)(n_layer=1, n_head=2, n_embd=16, n_layers=1, n_heads=2, dim=16,
                                                hidden_dim=32)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    supported = r"BERT \(model_type bert\), RoBERTa \(roberta\) or XLM-R \(xlm-roberta, camembert\)"
    with pytest.raises(TextEncoderUnavailable, match=f"{config.model_type!r} model, which is not supported.*"
                                                     f"{supported}"):
        check_text_encoder(str(folder), random_init=True, max_seq=128)
    with pytest.raises(TextEncoderUnavailable, match=supported):
        load_text_encoder(str(folder), random_init=True)


@pytest.mark.parametrize("family", FAMILIES[1:])
def test_all_paths_on_the_roberta_family(encoders, folders, tweets, family):
    """Prompts, dynamic matching (which reads the encoder's embeddings) and fusion on a RoBERTa-family
    encoder, left padding included: a tweet without a picture is tagged as by the text path alone, one
    with a picture sees it, and a backward step reaches the prefixes."""
    from comipn_model import CoMIPN, CoMIPNConfig
    from comipn_model.data.features import ImageFeatures, stack_visual
    from comipn_model.network.vision import vision_dims

    encoder, tokenizer = encoders[family]
    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = "left"
    config = CoMIPNConfig(text_model=folders[family], random_init=True, clip_model="ViT-S-32", clip_pretrained=None)
    torch.manual_seed(0)
    model = CoMIPN(config, encoder=copy.deepcopy(encoder), tokenizer=tokenizer).eval()
    blocks, width, patches = vision_dims("ViT-S-32")
    image = ImageFeatures(cls=torch.randn(blocks, width), patches=torch.randn(patches, width))
    pair = sorted(tweets, key=len)[:1] + sorted(tweets, key=len)[-1:]  # the short one is left-padded
    batch = WordBatcher(tokenizer, config.labels).encode(pair, visual=stack_visual([[], [image]], 4))
    assert batch.attention_mask[0, 0] == 0
    text_only = copy.copy(batch)
    text_only.visual = None
    right = WordBatcher(copy.copy(encoder_tokenizer := encoders[family][1]), config.labels).encode(
        pair, [["O"] * len(t) for t in pair], visual=stack_visual([[image], [image]], 4))
    left = WordBatcher(tokenizer, config.labels).encode(pair, [["O"] * len(t) for t in pair],
                                                        visual=stack_visual([[image], [image]], 4))
    assert encoder_tokenizer.padding_side == "right" and not torch.equal(right.input_ids, left.input_ids)
    with torch.no_grad():
        full, plain = model(batch).emissions, model(text_only).emissions
        on_right, on_left = model(right), model(left)
    assert (full[0] - plain[0]).abs().max() <= ATOL
    assert (full[1] - plain[1]).abs().max() > 10 * ATOL  # more than rounding: the picture is seen
    # the side of the padding changes nothing: emissions, the text's first token in the contrastive loss
    assert (on_right.emissions - on_left.emissions)[right.word_mask].abs().max() <= 1e-4
    assert abs(on_right.contrastive_loss - on_left.contrastive_loss) <= 1e-4
    model.train()
    model(batch).emissions.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.matching.parameters())
