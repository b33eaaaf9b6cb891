"""GPU memory of the encoder recipes (``--preset paper``, ``roberta-large``, ``xlm-roberta-large``), computed on
a CPU: nothing here needs a GPU or a download.

    .venv/bin/python tests/bench/bench_encoder_memory.py                       # the three recipes
    .venv/bin/python tests/bench/bench_encoder_memory.py --encoder roberta-large --seq 64

For each encoder (random weights from its config: bert-base-uncased, roberta-large and xlm-roberta-large
sizes), Co-MIPN with every switch on, a shared encoder and ViT-B/32 dims is built and counted
(``parameter_counts``); one training forward under bf16 autocast, on batches of 1 and 2 tweets of ``--seq``
sub-tokens with 4 images each (the worst case: every tweet as long as ``max_seq``), records the bytes of
every tensor autograd saves for the backward (``torch.autograd.graph.saved_tensors_hooks``; the fp32
weights themselves excluded, their bf16 copies included). The difference of the two is the activations per
tweet, the rest a constant. The estimate of a step's peak on a GPU is then

    16 bytes x parameters (fp32 weights, gradients, AdamW's two moments)
    + constant + batch x per tweet (the saved activations)
    + 1 GiB (CUDA context, cuBLAS workspaces, allocator slack: an allowance, not measured)

and the largest batch that fits 22 GiB (a 24 GB card) and 76 GiB (an 80 GB card) at that length.
CPU autocast is not CUDA's (which ops run in bf16, which attention kernel saves what), so these are
estimates to be checked on a GPU (bin/gpu-check measures a real step).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

GIB = 2 ** 30
ALLOWANCE_GIB = 1.0
CARDS_GIB = {"24 GB": 22.0, "80 GB": 76.0}
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
             max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)


def encoder_config(name: str):
    from transformers import BertConfig, RobertaConfig, XLMRobertaConfig

    return {"bert-base-uncased": lambda: BertConfig(),  # transformers' defaults are bert-base-uncased's sizes
            "roberta-large": lambda: RobertaConfig(vocab_size=50265, **LARGE),
            "xlm-roberta-large": lambda: XLMRobertaConfig(vocab_size=250002, **LARGE)}[name]()


def worst_batch(size: int, seq: int, images: int):
    from comipn_model.data.batch import ModelBatch
    from comipn_model.data.features import ImageFeatures, stack_visual
    from comipn_model.network.vision import vision_dims

    blocks, width, patches = vision_dims("ViT-B-32")
    ids = torch.randint(5, 1000, (size, seq))
    words = seq - 2
    visual = stack_visual([[ImageFeatures(cls=torch.randn(blocks, width), patches=torch.randn(patches, width))
                            for _ in range(images)] for _ in range(size)], images)
    return ModelBatch(input_ids=ids, attention_mask=torch.ones(size, seq, dtype=torch.long),
                      token_type_ids=torch.zeros(size, seq, dtype=torch.long),
                      word_starts=torch.arange(1, seq - 1).expand(size, words).contiguous(),
                      word_mask=torch.ones(size, words, dtype=torch.bool), word_counts=[words] * size,
                      labels=torch.zeros(size, words, dtype=torch.long), visual=visual)


def saved_bytes(model, batch) -> int:
    """Bytes of the distinct storages autograd saves in one training forward (parameters excluded)."""
    params = {p.data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        if tensor.data_ptr() not in params:
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", torch.bfloat16):
        model(batch)
    return sum(storages.values())


def measure(name: str, seq: int) -> dict:
    from transformers import AutoModel

    from comipn_model import CoMIPN, CoMIPNConfig

    torch.manual_seed(0)
    encoder = AutoModel.from_config(encoder_config(name), add_pooling_layer=False)
    model = CoMIPN(CoMIPNConfig(text_model=name, clip_pretrained=None, max_seq=seq), encoder=encoder).train()
    start = time.monotonic()
    one, two = (saved_bytes(model, worst_batch(b, seq, model.config.num_images)) for b in (1, 2))
    params = model.parameter_counts()["trainable"]
    static = 16 * params / GIB
    per_tweet, constant = (two - one) / GIB, (2 * one - two) / GIB
    return {"encoder": name, "params": params, "static": static, "constant": constant, "per_tweet": per_tweet,
            "fits": {card: int((limit - static - constant - ALLOWANCE_GIB) // per_tweet)
                     for card, limit in CARDS_GIB.items()},
            "batch_8": static + constant + 8 * per_tweet + ALLOWANCE_GIB, "seconds": time.monotonic() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", action="append", choices=["bert-base-uncased", "roberta-large",
                                                               "xlm-roberta-large"],
                        help="one encoder (repeatable); default: all three")
    parser.add_argument("--seq", type=int, default=128, help="sub-tokens per tweet (max_seq): the worst case")
    args = parser.parse_args()
    print(f"| encoder | trainable params | 16 B x params | saved: constant + per tweet (seq {args.seq}) | "
          f"batch 8 | largest batch: 24 GB / 80 GB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.encoder or ["bert-base-uncased", "roberta-large", "xlm-roberta-large"]:
        r = measure(name, args.seq)
        print(f"| {name} | {r['params'] / 1e6:.1f} M | {r['static']:.2f} GiB | {r['constant']:.2f} + "
              f"{r['per_tweet']:.3f} GiB | {r['batch_8']:.1f} GiB | {r['fits']['24 GB']} / {r['fits']['80 GB']} |",
              flush=True)


if __name__ == "__main__":
    main()
