"""``comipn-train``: train Co-MIPN, choose the checkpoint on dev, score test once; subcommands tag tweets
and export models.

A thin click layer over :mod:`comipn_model.training` (the training options sit on the group itself:
``comipn-train --data-root ... --dataset ...``; their handling is in :mod:`.train_cmd`). The same command
under ``torchrun --nproc_per_node N`` trains with DDP.
"""

from __future__ import annotations

import os

import click

from comipn_model.cli.config_option import config_option
from comipn_model.cli.option_types import parse_seeds
from comipn_model.network.config import PATH_GATES
from comipn_model.version import __version__
from comipn_model.training.config import PRESETS, presets_help

def _default(name: str, default) -> str:
    """The option's default without a preset, then each preset's value where it differs."""
    def show(value):
        return ("on" if value else "off") if isinstance(value, bool) else str(value)

    shown = [show(default)]
    for preset, values in PRESETS.items():
        value = {**values, **values.get("model", {})}.get(name)
        if value is not None and value != default:
            shown.append(f"{preset}: {show(value)}")
    return "; ".join(shown)


def _recipe(flag: str, name: str, default, type_, help_: str):
    """A recipe option whose help shows the default and each preset's value (the defaults shown by
    click alone would be the paper's only)."""
    return click.option(flag, type=type_, default=default, help=f"{help_}  [default: {_default(name, default)}]")


POSITIVE = click.FloatRange(0, min_open=True)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Presets (options given on the command line win):\n\n" + presets_help())
@click.version_option(__version__, prog_name="comipn-train")
@config_option
@click.option("--data-root", type=click.Path(file_okay=False), help="Folder holding <dataset>/, "
              "<dataset>_images/ and <dataset>_aux_images/ (the field's layout; HVPNeT's data/NER_data).")
@click.option("--dataset", help="twitter2015, twitter2017 or any dataset folder under --data-root.")
@click.option("--preset", type=click.Choice(list(PRESETS)),
              help="Recipe defaults, listed below (options given on the command line win).")
@click.option("--text-model", help="Text encoder: hub name or local folder (offline: a local folder). "
              "[default: bert-base-uncased; cpu-small: the packaged MiniLM-L6]")
@click.option("--random-init", is_flag=True, default=False,
              help="Build the text encoder from its config with random weights (speed checks).")
@click.option("--clip-model", help="open_clip vision model name. [default: ViT-B-32]")
@click.option("--clip-pretrained", help="open_clip pretrained tag, local weights file, or 'none' (random). "
              "[default: openai]")
@click.option("--matching-tower", metavar="NAME|FOLDER",
              help="Dynamic matching's patch tokens from this frozen DINO ViT (transformers: DINOv2, or the original "
                   "DINO ViTModel; a Hub name such as facebook/dinov2-base or a local save_pretrained folder); the "
                   "prompts keep CLIP's. [default: none, CLIP's patches]")
@click.option("--use-prompt/--no-use-prompt", default=True, help="Visual prefix prompts.")
@click.option("--use-dynamic-matching/--no-use-dynamic-matching", default=True, help="Dynamic similarity matching.")
@click.option("--use-contrastive/--no-use-contrastive", default=True, help="Contrastive aggregation loss.")
@click.option("--visual-norm/--no-visual-norm", default=True,
              help="Standardise the vision tower's features by the training images' mean and std.")
@click.option("--separate-path-encoders/--shared-path-encoders", default=False,
              help="One encoder copy per path (paper-faithful) or one shared encoder.")
@click.option("--path-gate", type=click.Choice(list(PATH_GATES)), default="softmax", show_default=True,
              help="Fusion of the paths: a softmax over them at every token (the paper's); tanh: text-only "
              "at the start, each visual path opened by a zero-initialised gate; sigmoid-softmax: the original "
              "code's (a shared score, sigmoid, then softmax: no path below 21% of a token).")
@click.option("--text-only", is_flag=True, help="All switches off: the BERT-CRF baseline (no images read).")
@click.option("--aux-k", type=click.IntRange(0, 3), default=3, show_default=True, help="Object crops per tweet.")
@click.option("--prompt-len", type=click.IntRange(1), default=4, show_default=True,
              help="Prefix vectors per image per text layer.")
@click.option("--embed-dim", type=click.IntRange(1), default=256, show_default=True,
              help="Width of the contrastive aggregation's shared space.")
@click.option("--contrastive-weight", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="lambda in (1 - lambda) * CRF loss + lambda * contrastive loss.")
@click.option("--contrastive-temperature", type=click.FloatRange(0.01, 1), default=0.07, show_default=True,
              help="The contrastive loss's learned temperature at the start (the original code: 0.179).")
@click.option("--region-weight", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Weight of the region loss: a head that learns which crop holds each entity word's entity, "
                   "from gold boxes (DATA_ROOT/DATASET/xml/<imgid>.xml, Pascal VOC, and grounding's manifest.csv); "
                   "needs dynamic matching and crops. The matching linker then reads it. 0: off.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Dropout of the new modules and before the emissions.")
@click.option("--max-seq", type=click.IntRange(8), default=128, show_default=True,
              help="Sub-tokens per tweet, the special tokens included; at most the text encoder's positions (512).")
@_recipe("--epochs", "epochs", 30, click.IntRange(1), "Training epochs.")
@_recipe("--batch-size", "batch_size", 8, click.IntRange(1), "Tweets per optimizer step (per process under DDP).")
@click.option("--eval-batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Tweets per batch when tagging dev and test.")
@_recipe("--lr", "lr", 3e-5, POSITIVE, "Text encoder learning rate.")
@_recipe("--new-lr", "new_lr", 1e-3, POSITIVE, "New modules' learning rate.")
@_recipe("--crf-lr", "crf_lr", 5e-2, POSITIVE, "CRF learning rate.")
@_recipe("--weight-decay", "weight_decay", 0.01, click.FloatRange(0), "AdamW weight decay (not on biases, LayerNorm).")
@_recipe("--warmup-ratio", "warmup_ratio", 0.01, click.FloatRange(0, 1, max_open=True),
         "Share of the steps with a linearly rising learning rate.")
@click.option("--grad-clip", type=POSITIVE, default=1.0, show_default=True, help="Gradient norm clipping.")
@_recipe("--seed", "seed", 1234, int, "Seed of everything random (batch order, dropout, init).")
@click.option("--seeds", callback=lambda ctx, param, value: parse_seeds(value), metavar="LIST|N",
              help="One run per seed in RUN_DIR/seed-<k>/ (1,2,3; or N: the seeds 1 to N), then seeds.json with "
                   "dev and test F1 as mean +- sd; resumable with --resume.")
@click.option("--sample-ratio", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Share of the train split used.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=None, help="bf16 autocast (default: on with CUDA).")
@click.option("--compile/--no-compile", default=False, show_default=True,
              help="Train through torch.compile (static shapes: train batches padded to multiples of 32 "
                   "sub-tokens and words); the first batches of each shape compile.")
@click.option("--compile-mode", type=click.Choice(["default", "reduce-overhead", "max-autotune"]),
              default="default", show_default=True,
              help="torch.compile's mode with --compile (reduce-overhead: CUDA graphs on a GPU).")
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Stop after N optimizer steps.")
@click.option("--save-steps", type=click.IntRange(1), default=None,
              help="Also save last.pt every N optimizer steps (long epochs; it is saved after each epoch).")
@click.option("--eval-every-epoch/--eval-last-epoch", default=True, show_default=True,
              help="Score dev after every epoch (model selection) or after the last only.")
@_recipe("--bucket/--no-bucket", "bucket", True, None, "Length-bucketed train batches (seeded): less padding.")
@click.option("--feature-cache", type=click.Path(file_okay=False),
              help="Cache of visual features (default ~/.cache/comipn/features or $COMIPN_FEATURE_CACHE).")
@click.option("--allow-missing-images", is_flag=True,
              help="Train although a split has no image on disk or under half of them (they are masked).")
@click.option("--report-to", type=click.Choice(["none", "tensorboard"]), default="none", show_default=True,
              help="tensorboard: loss, learning rates and dev P/R/F1 as event files in RUN_DIR/tensorboard "
                   "(pip install tensorboard).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run folder (default runs/<dataset>).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --run-dir from its last.pt with its config.json; only --epochs, "
                   "--data-root and --device may change.")
@click.option("--force", is_flag=True, help="Start over in a --run-dir that holds a run.")
@click.option("--only-test", is_flag=True, help="Score --load-path on test with the checkpoint's own model.")
@click.option("--load-path", type=click.Path(dir_okay=False), help="Checkpoint for --only-test.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.option("--no-progress", is_flag=True, help="No progress bars (TQDM_DISABLE=1 does the same).")
@click.pass_context
def main(ctx: click.Context, **opts) -> None:
    """Train Co-MIPN on a dataset in the field's layout: select the checkpoint on dev F1, score test once.

    \b
    comipn-train --data-root ROOT --dataset twitter2017 --preset cpu-small --text-only
    comipn-train --config configs/twitter2017-paper.toml --data-root ROOT   # an experiment file
    comipn-train --run-dir runs/x --resume        # after Ctrl-C, a kill, or to train longer (--epochs)
    comipn-train predict --load-path runs/x/best.pt --input tweets.txt --out tagged.jsonl
    """
    from comipn_prep.logs import setup_cli_logging

    ctx.call_on_close(setup_cli_logging(verbose=opts["verbose"], quiet=opts["quiet"],
                                        progress=not opts["no_progress"],
                                        main_process=int(os.environ.get("RANK", "0")) == 0))
    if ctx.invoked_subcommand is not None:
        return
    from comipn_model.cli.train_cmd import run

    run(ctx, opts)


def _register() -> None:
    from comipn_model.cli import ablate_cmd, compare_cmd, evaluate_gmner_cmd, export_cmd, predict_cmd

    main.add_command(predict_cmd.predict)
    main.add_command(export_cmd.export)
    main.add_command(compare_cmd.compare)
    main.add_command(ablate_cmd.ablate)
    main.add_command(evaluate_gmner_cmd.evaluate_gmner)


_register()
