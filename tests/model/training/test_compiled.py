"""``--compile``: the compiled training step equals the eager one (loss and every gradient), on the CPU."""

from __future__ import annotations

import copy
import time

import pytest
import torch

from comipn_model import CoMIPN, CoMIPNConfig, WordBatcher
from comipn_model.data.features import ImageFeatures, stack_visual
from comipn_model.network.vision import vision_dims
from comipn_model.training.compiled import PAD_MULTIPLE, compile_network
from comipn_prep.conll import read_conll


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_step_gives_the_eager_loss_and_gradients(make_tiny_encoder, twitter_data, tmp_path, backend):
    """Every switch on, 4 tweets (one without any image, so the contrastive loss masks a row), batches
    padded as the trainer pads them for --compile: the whole forward is one graph (no break), and the
    loss and every parameter's gradient equal eager mode's within 1e-4. ``aot_eager`` traces forward and
    backward without generating code (seconds); ``inductor``, what --compile runs, generates and builds
    C++ kernels (169 s on 2 shared cores: marked slow)."""
    import torch._dynamo

    encoder = make_tiny_encoder(tmp_path / "enc", dropout=0.0)
    torch.manual_seed(0)
    config = CoMIPNConfig(text_model=str(encoder), random_init=True, clip_pretrained=None, dropout=0.0)
    eager = CoMIPN(config).train()
    compiled_model = copy.deepcopy(eager)
    blocks, width, patches = vision_dims(config.clip_model)
    gen = torch.Generator().manual_seed(1)

    def feats():
        return ImageFeatures(cls=torch.randn(blocks, width, generator=gen),
                             patches=torch.randn(patches, width, generator=gen))

    tweets = list(read_conll(twitter_data / "twitter2015" / "train.txt"))[:4]
    visual = stack_visual([[feats(), feats()], [feats()], [], [feats(), None, feats()]], config.num_images)
    batcher = WordBatcher(eager.tokenizer, config.labels, config.max_seq, pad_multiple=PAD_MULTIPLE)
    batch = batcher.encode([t.tokens for t in tweets], [t.labels for t in tweets], visual)
    assert batch.input_ids.shape[1] % PAD_MULTIPLE == 0 and batch.word_mask.shape[1] % PAD_MULTIPLE == 0

    reference = eager(batch)
    reference.loss.backward()
    torch._dynamo.reset()
    try:
        start = time.perf_counter()
        out = compile_network(compiled_model, backend=backend, fullgraph=True)(batch)
        out.loss.backward()
        print(f"compiled forward + backward (compile included): {time.perf_counter() - start:.1f} s")
    finally:
        torch._dynamo.reset()
    assert reference.contrastive_loss is not None  # three imaged rows: the contrastive loss counts
    assert torch.allclose(out.loss, reference.loss, atol=1e-4, rtol=0), (out.loss, reference.loss)
    names = dict(eager.named_parameters())
    checked = 0
    for name, p in compiled_model.named_parameters():
        ref = names[name].grad
        if ref is None:
            assert p.grad is None or not p.grad.any(), name
            continue
        assert p.grad is not None, name
        assert torch.allclose(p.grad, ref, atol=1e-4, rtol=1e-4), (name, (p.grad - ref).abs().max())
        checked += 1
    assert checked > 40


@pytest.mark.parametrize("mode", ["fast", "bogus"])
def test_compile_mode_is_checked(mode):
    from comipn_model.training.config import TrainConfig

    if mode == "bogus":
        with pytest.raises(ValueError, match="compile"):
            compile_network(torch.nn.Linear(2, 2), mode)
        with pytest.raises(ValueError, match="--compile-mode"):
            TrainConfig(data_root=".", dataset="x", run_dir="r", compile=True, compile_mode=mode)
    else:
        cfg = TrainConfig(data_root=".", dataset="x", run_dir="r", compile=True, compile_mode="reduce-overhead")
        assert TrainConfig.from_dict(cfg.to_dict()).compile_mode == "reduce-overhead"
