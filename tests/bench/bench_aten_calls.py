"""ATen calls (and CPU time) of one paper-size training step, counted with ``torch.profiler`` on the CPU
(issue 28): on a GPU each such call is at least one kernel launch, and at batch 8 the step is bound by
launches, so this count is what a launch-free step has to bring down.

    .venv/bin/python tests/bench/bench_aten_calls.py                  # paper size (BERT-base, ViT-B/32 dims)
    .venv/bin/python tests/bench/bench_aten_calls.py --tiny           # a 2-layer BERT (seconds)
    .venv/bin/python tests/bench/bench_aten_calls.py --compile        # the step through torch.compile

The step is the trainer's (``comipn_model.training.loop.train_step``: forward, backward, clip, fused AdamW,
schedule), random weights from BERT-base's config, every switch on (prompts, dynamic matching, contrastive
aggregation, visual norm, three paths through one shared encoder), ViT-B/32-shaped random features of 4
images a tweet, batch 8 of the first real Twitter-2015 train tweets, ``--max-seq`` 128, padded as a
compiled step's batches are (sub-tokens and words to multiples of 32). Two warm-up steps, then
``--steps`` profiled steps; the figures are per step (medians).

Counted: ``aten_calls``, the outermost ``aten::`` calls that are not views or metadata (``aten::linear``
counts once, not again for the ``aten::addmm`` it makes; each is at least one kernel launch on a GPU);
``all_aten_events``, every ``aten::`` event, nested ones included; ``cpu_ms``, the step's wall time
under the profiler.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _offline import REPO  # noqa: E402  (offline env, repo on sys.path)

# Calls that only make a new view of the same memory, or read metadata: no kernel on a GPU.
VIEW_OPS = {"aten::view", "aten::reshape", "aten::_reshape_alias", "aten::as_strided", "aten::transpose",
            "aten::t", "aten::permute", "aten::expand", "aten::unsqueeze", "aten::squeeze", "aten::slice",
            "aten::select", "aten::detach", "aten::alias", "aten::unbind", "aten::split", "aten::chunk",
            "aten::narrow", "aten::flatten", "aten::unflatten", "aten::_unsafe_view", "aten::empty",
            "aten::empty_strided", "aten::empty_like", "aten::resize_", "aten::lift_fresh", "aten::result_type",
            "aten::is_nonzero", "aten::size", "aten::stride", "aten::contiguous", "aten::expand_as",
            "aten::view_as", "aten::numpy_T", "aten::_has_compatible_shallow_copy_type", "aten::set_",
            "aten::unsafe_split", "aten::split_with_sizes", "aten::unsafe_chunk", "aten::to", "aten::_to_copy",
            "aten::type_as", "aten::item", "aten::_local_scalar_dense", "aten::is_same_size", "aten::broadcast_to",
            "aten::diagonal", "aten::movedim", "aten::swapaxes", "aten::matrix_H", "aten::mT", "aten::align_to",
            "aten::zeros", "aten::ones", "aten::new_empty", "aten::new_empty_strided", "aten::new_zeros",
            "aten::full", "aten::scalar_tensor", "aten::index_select_backward"}


def build(args, work: Path):
    import torch

    from comipn_model import CoMIPN, CoMIPNConfig, WordBatcher
    from comipn_model.data.features import ImageFeatures, stack_visual
    from comipn_model.network.text_encoder import make_random_bert_base
    from comipn_model.network.vision import vision_dims
    from comipn_model.training.compiled import PAD_MULTIPLE
    from comipn_model.training.config import TrainConfig
    from comipn_model.training.optim import make_optimizer, make_scheduler
    from comipn_prep.conll import read_conll

    folder = make_random_bert_base(work / "bert")
    if args.tiny:
        from transformers import BertConfig

        config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        (folder / "config.json").write_text(json.dumps(config.to_dict()))
    torch.manual_seed(1234)
    model_cfg = CoMIPNConfig(text_model=str(folder), random_init=True, clip_model="ViT-B-32", clip_pretrained=None,
                             max_seq=args.max_seq)
    model = CoMIPN(model_cfg).train()
    cfg = TrainConfig(data_root=".", dataset="twitter2015", run_dir=str(work / "run"), model=model_cfg,
                      batch_size=args.batch)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, 1000, cfg.warmup_ratio)
    blocks, width, patches = vision_dims("ViT-B-32")
    gen = torch.Generator().manual_seed(0)
    feats = [[ImageFeatures(cls=torch.randn(blocks, width, generator=gen),
                            patches=torch.randn(patches, width, generator=gen))
              for _ in range(model_cfg.num_images)] for _ in range(args.batch)]
    visual = stack_visual(feats, model_cfg.num_images)
    tweets = list(read_conll(REPO / "data" / "twitter2015" / "train.txt"))[:args.batch]
    batcher = WordBatcher(model.tokenizer, model_cfg.labels, model_cfg.max_seq, pad_multiple=PAD_MULTIPLE)
    batch = batcher.encode([t.tokens for t in tweets], [t.labels for t in tweets], visual)
    return model, cfg, optimizer, scheduler, batch


def count(prof) -> dict:
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    by_thread: dict = {}
    for e in events:
        by_thread.setdefault(e.thread, []).append(e)
    outer = 0
    per_name: dict[str, int] = {}
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e.time_range.start, -e.time_range.end))
        open_until = -1  # end of the outermost aten:: call around the current event
        for e in evs:
            if e.time_range.start < open_until:
                continue  # inside another aten:: call (e.g. aten::addmm under aten::linear)
            open_until = e.time_range.end
            if e.name not in VIEW_OPS:
                outer += 1
                per_name[e.name] = per_name.get(e.name, 0) + 1
    return {"aten_calls": outer, "all_aten_events": len(events),
            "top": dict(sorted(per_name.items(), key=lambda kv: -kv[1])[:30])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, 64-wide BERT instead of BERT-base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1, help="profiled steps (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="the step through torch.compile (as --compile)")
    parser.add_argument("--top", action="store_true", help="also print the most frequent leaf calls")
    args = parser.parse_args()
    import logging

    import torch
    from torch.profiler import ProfilerActivity, profile

    from comipn_model.training.compiled import compile_network
    from comipn_model.training.loop import train_step

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="comipn-aten-") as tmp:
        model, cfg, optimizer, scheduler, batch = build(args, Path(tmp))
        net = compile_network(model) if args.compile else model
        cpu = torch.device("cpu")

        def step(batch):
            return train_step(net, model, batch, optimizer, scheduler, cfg, cpu)

        for _ in range(2):
            step(batch)
        figures = []
        for _ in range(args.steps):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                start = time.perf_counter()
                loss = step(batch)
                seconds = time.perf_counter() - start
            figures.append({**count(prof), "cpu_ms": round(seconds * 1000, 1), "loss": float(loss)})
    result = {"size": "tiny" if args.tiny else "bert-base", "batch": args.batch, "max_seq": args.max_seq,
              "compile": args.compile, "steps": args.steps,
              "aten_calls": int(statistics.median(f["aten_calls"] for f in figures)),
              "all_aten_events": int(statistics.median(f["all_aten_events"] for f in figures)),
              "cpu_ms": statistics.median(f["cpu_ms"] for f in figures), "loss": figures[-1]["loss"]}
    if args.top:
        result["top"] = figures[-1]["top"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
