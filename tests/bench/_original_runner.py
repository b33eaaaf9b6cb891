"""The original Co-MIPN code's training step, timed (issue 28); started by gpu_check's ``original_step``.

    python _original_runner.py SPEC.json RESULT.json      (cwd: a scratch folder; see below)

Runs in a process of its own whose ``sys.path`` starts with the original's checkout and the
transformers 4.x it was written for (installed from ``.gpu/original/wheels``): nothing of comipn is
imported here, and the original's imports cannot reach ours. The original reads its towers from fixed
Windows folders (one path named in its source, found there by :func:`towers_folder`), which on Linux are
paths relative to the working folder: this script writes random-weight models of the right shapes there
(``save_pretrained``, from configs: no hub), builds ``models.bert_model.HMNeTNERModel`` and its optimizer
through the original ``NERTrainer.multiModal_before_train``, encodes the tweets of SPEC with the original
``MMPNERDataset`` (its padding to ``max_seq``, its labels), draws random pixels for the main image and
the 3 crops, and times the trainer's step: forward, loss, ``backward``, ``optimizer.step``,
``scheduler.step``, ``zero_grad`` (the ``loss.item()`` the trainer logs included).

SPEC: {"device", "tiny", "max_seq", "warmup_steps", "batches": [[{"words", "labels"}, ...], ...],
"vocab": a BERT vocab.txt, "seed", "threads"}. RESULT: {"figures", "checks", "summary"}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import re
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

# The original names its model folders by one fixed path (its processor/dataset.py BERT_PATH and the
# folders beside it, read by models/bert_model.py); relative on Linux, so they land in the cwd.
BERT_PATH = re.compile(r"""^BERT_PATH\s*=\s*['"]([^'"]+)['"]""", re.M)
CROPS = 3  # the original's aux images per tweet (its dataset pads to 3 with zeros)


def configs(tiny: bool) -> dict:
    """The four towers' configs: BERT-base, CLIP ViT-B/32 vision, DINO ViT-B/16, ALBERT-base (v2). The
    original fixes width 768, 12 heads, 12 blocks in BERT (its encoder loops over 12) and in CLIP (13 hidden
    states of 50 tokens = 12 rows of 41,600) and 197 DINO tokens, so --tiny cuts the feed-forward width,
    and the depth of DINO and ALBERT only."""
    from transformers import AlbertConfig, BertConfig, CLIPVisionConfig, ViTConfig

    small = {"intermediate_size": 64} if tiny else {}
    return {"bert-base-uncased": BertConfig(**small),
            "clip": CLIPVisionConfig(**small),  # ViT-B/32 at 224: 50 tokens
            "dino-vit": ViTConfig(**small, **({"num_hidden_layers": 1} if tiny else {})),  # ViT-B/16: 197
            "albert": AlbertConfig(hidden_size=768, num_attention_heads=12, embedding_size=128, vocab_size=30000,
                                   intermediate_size=64 if tiny else 3072, num_hidden_layers=1 if tiny else 12)}


def towers_folder() -> str:
    """The folder the checkout on sys.path loads its towers from, read from its source (not imported)."""
    source = Path(importlib.util.find_spec("processor.dataset").origin).read_text(encoding="utf-8")
    found = BERT_PATH.search(source)
    if found is None:
        raise SystemExit("the original's processor/dataset.py names no BERT_PATH: another version of its code?")
    return str(Path(found.group(1)).parent)


def write_towers(root: Path, tiny: bool, vocab: Path, seed: int) -> Path:
    import torch
    from transformers import AlbertModel, BertModel, CLIPVisionModel, ViTModel

    classes = {"bert-base-uncased": BertModel, "clip": CLIPVisionModel, "dino-vit": ViTModel, "albert": AlbertModel}
    towers = root / towers_folder()
    for name, config in configs(tiny).items():
        torch.manual_seed(seed)
        classes[name](config).save_pretrained(towers / name)
    bert = towers / "bert-base-uncased"
    shutil.copy(vocab, bert / "vocab.txt")  # the original's BertTokenizer reads it
    return bert


def peak(device: str) -> dict:
    import torch

    if device.startswith("cuda"):
        return {"peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3)}
    return {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("original")
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    import torch
    import transformers

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    device = spec["device"]
    cuda = device.startswith("cuda")
    root = Path.cwd()
    start = time.perf_counter()
    bert = write_towers(root, spec["tiny"], Path(spec["vocab"]), spec["seed"])
    towers_s = time.perf_counter() - start

    from models.bert_model import HMNeTNERModel
    from modules.train import NERTrainer
    from processor.dataset import MMPNERDataset, MMPNERProcessor

    batches = spec["batches"]
    bs = len(batches[0])
    steps = len(batches)
    # The Twitter-2017 script's switches (run_twitter17.sh) and run.py's defaults for the rest.
    args = argparse.Namespace(device=device, bert_name=str(bert.relative_to(root)), max_seq=spec["max_seq"],
                              batch_size=bs, lr=3e-5, warmup_ratio=0.01, num_epochs=1, prompt_len=12, prompt_dim=800,
                              use_prompt=True, use_contrastive=True, use_matching=False, embed_dim=256, temp=0.07,
                              ignore_idx=0, load_path=None, save_path=None, seed=spec["seed"])

    # The original dataset's encoding (word pieces, X labels, [CLS] / [SEP], padding to max_seq); its
    # loader reads files and images from fixed folders, so the tweets come from SPEC instead.
    processor = MMPNERProcessor({}, args.bert_name)
    words = [t["words"] for b in batches for t in b]
    # its loader's one change to the labels: B-OTHER -> B-MISC
    targets = [[lab[:2] + "MISC" if "OTHER" in lab else lab for lab in t["labels"]] for b in batches for t in b]
    processor.load_from_file = lambda mode, sample_ratio=1.0: {"words": words, "targets": targets,
                                                               "imgs": ["none.jpg"] * len(words), "aux_imgs": {}}
    dataset = MMPNERDataset(processor, None, None, None, args.max_seq, mode="train", ignore_idx=args.ignore_idx)
    label_mapping = processor.get_label_mapping()
    gen = torch.Generator().manual_seed(spec["seed"])
    encoded = []
    for i in range(steps):
        rows = [dataset[i * bs + j] for j in range(bs)]
        input_ids, token_type_ids, attention_mask, labels = (torch.stack(col) for col in zip(*rows))
        images = torch.randn(bs, 3, 224, 224, generator=gen)  # after the original's Normalize
        aux = torch.randn(bs, CROPS, 3, 224, 224, generator=gen)
        encoded.append((input_ids, token_type_ids, attention_mask, labels, images, aux))
    albert_vocab = configs(spec["tiny"])["albert"].vocab_size
    beyond = sum(int((b[0] >= albert_vocab).sum()) for b in encoded)
    longest = max(int(b[2].sum(1).max()) for b in encoded)  # word pieces with [CLS] / [SEP], before padding

    torch.manual_seed(spec["seed"])
    build = time.perf_counter()
    model = HMNeTNERModel(list(label_mapping.keys()), args)
    trainer = NERTrainer(model=model, label_map=label_mapping, args=args, logger=log)
    trainer.train_num_steps = steps  # what its train() sets from the loader's length
    trainer.multiModal_before_train()  # its optimizer groups and scheduler; moves the model to the device
    build_s = time.perf_counter() - build
    optimizer, scheduler = trainer.optimizer, trainer.scheduler
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    groups = [[p for p in g["params"]] for g in optimizer.param_groups]
    before = [[p.detach().flatten()[:64].clone() for p in ps] for ps in groups]  # a corner of every tensor
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model.train()
    times, losses = [], []
    for i, batch in enumerate(encoded):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        # the body of NERTrainer.train's loop, up to its metrics bookkeeping
        batch = (t.to(device) for t in batch)
        _, _, _, loss = trainer._step(batch, mode="train")
        losses.append(loss.detach().cpu().item())
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        if cuda:
            torch.cuda.synchronize()
        if i >= spec["warmup_steps"]:
            times.append(time.perf_counter() - t0)
        log.info("step %d: %.3f s, loss %.4f", i, time.perf_counter() - t0, losses[-1])
    median = statistics.median(times)
    updated = [sum(not torch.equal(old, p.detach().flatten()[:64]) for old, p in zip(olds, ps))
               for olds, ps in zip(before, groups)]
    params = list(model.parameters())
    figures = {"batch_size": bs, "max_seq": args.max_seq, "crops": CROPS, "image_size": 224,
               "median_step_s": round(median, 5), "tweets_per_s": round(bs / median, 3),
               "steps_s": [round(t, 5) for t in times], "losses": [round(v, 4) for v in losses], **peak(device),
               "warmup_steps": spec["warmup_steps"], "towers_written_s": round(towers_s, 1),
               "model_built_s": round(build_s, 1), "transformers": transformers.__version__,
               "torch": torch.__version__, "precision": "fp32 (the original has no autocast)",
               "params_total": sum(p.numel() for p in params),
               "params_in_optimizer": sum(p.numel() for p in params if id(p) in in_optimizer),
               "optimizer_groups_updated": [f"{u}/{len(ps)}" for u, ps in zip(updated, groups)],
               "token_ids_beyond_albert_vocab": beyond, "longest_tweet_tokens": longest}
    # The original's linear warm-up gives the first step a learning rate of 0: the check needs 2 steps or more.
    checks = {"loss_finite": all(math.isfinite(v) for v in losses),
              "every_optimizer_group_updated": steps > 1 and all(u > 0 for u in updated)}
    mem = figures.get("peak_gpu_gib", figures.get("peak_rss_gib"))
    summary = [f"original code, batch {bs}, max_seq {args.max_seq}: {figures['tweets_per_s']} tweets/s (median step "
               f"{median * 1000:.1f} ms of {len(times)}), peak memory {mem} GiB; "
               f"{figures['params_total'] / 1e6:.1f} M parameters, {figures['params_in_optimizer'] / 1e6:.1f} M "
               f"in the optimizer; transformers {transformers.__version__}"]
    out.write_text(json.dumps({"figures": figures, "checks": checks, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
