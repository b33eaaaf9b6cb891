"""``comipn-train``: train Co-MIPN, choose the checkpoint on dev, score test once; ``predict`` tags tweets.

A thin click layer over :mod:`comipn_model.training` and :mod:`comipn_model.predict`. Training options
sit on the group itself (``comipn-train --data-root ... --dataset ...``); ``comipn-train predict ...`` is
the one subcommand. The same command under ``torchrun --nproc_per_node N`` trains with DDP.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import click

from comipn_prep.cli.errors import EXIT_BAD_INPUT, bad_input_exits

from .. import __version__

log = logging.getLogger(__name__)

_UNAVAILABLE = ("WeightsUnavailable", "TextEncoderUnavailable", "ImageLoadError")
_MODEL_FLAGS = "--text-model (a local BERT folder) and --clip-pretrained (a local weights file, or none)"


@contextlib.contextmanager
def _fail_fast():
    """Bad input and unavailable weights -> a clear message and exit 2, no traceback."""
    try:
        with bad_input_exits():
            yield
    except Exception as err:  # noqa: BLE001 - only the weights errors are turned into exit 2 here
        if type(err).__name__ in _UNAVAILABLE or isinstance(err, OSError):
            click.echo(f"error: {err}\n(offline? {_MODEL_FLAGS} take local files)", err=True)
            sys.exit(EXIT_BAD_INPUT)
        raise


def _setup_logging(verbose: bool) -> None:
    rank = int(os.environ.get("RANK", "0"))
    level = logging.DEBUG if verbose else (logging.INFO if rank == 0 else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _given(ctx: click.Context, names: list[str]) -> dict:
    """The options the user set on the command line (presets fill in the rest)."""
    from click.core import ParameterSource

    return {name: ctx.params[name] for name in names
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}


_TRAIN_FIELDS = ["epochs", "batch_size", "eval_batch_size", "lr", "new_lr", "crf_lr", "weight_decay",
                 "warmup_ratio", "grad_clip", "seed", "sample_ratio", "device", "amp", "max_steps",
                 "eval_every_epoch", "bucket", "feature_cache"]
_MODEL_FIELDS = ["text_model", "random_init", "clip_model", "clip_pretrained", "prompt_len", "embed_dim", "aux_k",
                 "use_prompt", "use_dynamic_matching", "use_contrastive", "separate_path_encoders",
                 "contrastive_weight", "dropout", "max_seq"]


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="comipn-train")
@click.option("--data-root", type=click.Path(file_okay=False), help="Folder holding <dataset>/, "
              "<dataset>_images/ and <dataset>_aux_images/ (the field's layout).")
@click.option("--dataset", help="twitter2015, twitter2017 or any dataset name under --data-root.")
@click.option("--preset", type=click.Choice(["paper", "cpu-small"]),
              help="Recipe defaults (options given on the command line win).")
@click.option("--text-model", help="Text encoder: hub name or local folder (offline: a local folder).")
@click.option("--random-init", is_flag=True, default=False,
              help="Build the text encoder from its config with random weights (speed checks).")
@click.option("--clip-model", help="open_clip vision model name, e.g. ViT-B-32.")
@click.option("--clip-pretrained", help="open_clip pretrained tag, local weights file, or 'none' (random).")
@click.option("--use-prompt/--no-use-prompt", default=True, help="Visual prefix prompts.")
@click.option("--use-dynamic-matching/--no-use-dynamic-matching", default=True, help="Dynamic similarity matching.")
@click.option("--use-contrastive/--no-use-contrastive", default=True, help="Contrastive aggregation loss.")
@click.option("--separate-path-encoders/--shared-path-encoders", default=False,
              help="One encoder copy per path (paper-faithful) or one shared encoder.")
@click.option("--text-only", is_flag=True, help="All switches off: the BERT-CRF baseline (no images read).")
@click.option("--aux-k", type=click.IntRange(0, 3), default=3, show_default=True, help="Object crops per tweet.")
@click.option("--prompt-len", type=click.IntRange(1), default=4, show_default=True)
@click.option("--embed-dim", type=click.IntRange(1), default=256, show_default=True)
@click.option("--contrastive-weight", type=click.FloatRange(0, 1), default=0.2, show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--max-seq", type=click.IntRange(8), default=128, show_default=True,
              help="Sub-tokens per tweet ([CLS]/[SEP] included).")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--eval-batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=float, default=3e-5, show_default=True, help="Text encoder learning rate.")
@click.option("--new-lr", type=float, default=1e-3, show_default=True, help="New modules' learning rate.")
@click.option("--crf-lr", type=float, default=5e-2, show_default=True, help="CRF learning rate.")
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option("--warmup-ratio", type=click.FloatRange(0, 1, max_open=True), default=0.01, show_default=True)
@click.option("--grad-clip", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--sample-ratio", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Share of the train split used.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=None, help="bf16 autocast (default: on with CUDA).")
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Stop after N optimizer steps.")
@click.option("--eval-every-epoch/--eval-last-epoch", default=True, show_default=True,
              help="Score dev after every epoch (model selection) or after the last only.")
@click.option("--bucket/--no-bucket", default=True, show_default=True,
              help="Length-bucketed train batches (seeded): less padding, faster epochs.")
@click.option("--feature-cache", type=click.Path(file_okay=False),
              help="Cache of visual features (default ~/.cache/comipn/features or $COMIPN_FEATURE_CACHE).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run folder (default runs/<dataset>).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --run-dir from its last.pt, with that run's config.json.")
@click.option("--force", is_flag=True, help="Start over in a --run-dir that holds a run.")
@click.option("--only-test", is_flag=True, help="Score --load-path on test; no training.")
@click.option("--load-path", type=click.Path(dir_okay=False), help="Checkpoint for --only-test.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, **opts) -> None:
    """Train Co-MIPN on a dataset in the field's layout: select the checkpoint on dev F1, score test once.

    \b
    comipn-train --data-root ROOT --dataset twitter2017 --preset cpu-small --text-model PATH --text-only
    comipn-train predict --load-path runs/x/best.pt --input tweets.txt --out tagged.jsonl
    """
    _setup_logging(opts["verbose"])
    if ctx.invoked_subcommand is not None:
        return
    if opts["resume"] and not opts["only_test"]:
        if not opts["run_dir"]:
            raise click.UsageError("--resume needs --run-dir (the run to continue)")
        with _fail_fast():
            result = _resume(opts)
        _echo_result(result)
        return
    if not opts["data_root"] or not opts["dataset"]:
        raise click.UsageError("--data-root and --dataset are needed to train (or name a subcommand)")
    if opts["only_test"] and not opts["load_path"]:
        raise click.UsageError("--only-test needs --load-path CKPT")
    with _fail_fast():
        cfg = build_config(ctx, opts)
        from ..training import only_test, train

        if opts["only_test"]:
            result = only_test(cfg, opts["load_path"], force=opts["force"])
            click.echo(f"test F1 {result['overall']['f1']:.4f} -> {cfg.run_dir}")
            return
        result = train(cfg, force=opts["force"])
    _echo_result(result)


def _resume(opts: dict):
    """Continue the run in --run-dir with its own config.json (same data, recipe and seed); only where
    it runs (--device) may change."""
    from ..run_folder import CONFIG, RunFolder
    from ..training import TrainConfig, train

    folder = RunFolder(opts["run_dir"])
    if not folder.file(CONFIG).is_file():
        raise FileNotFoundError(f"{folder.file(CONFIG)}: no run to resume in {folder.path}")
    cfg = TrainConfig.from_dict(folder.read_json(CONFIG))
    cfg.run_dir, cfg.device = opts["run_dir"], opts["device"]
    return train(cfg, resume=True)


def _echo_result(result) -> None:
    if result.test is not None:
        click.echo(f"best dev F1 {result.best_dev_f1:.4f} (epoch {result.best_epoch}); "
                   f"test F1 {result.test['overall']['f1']:.4f} -> {result.run_dir}")


def build_config(ctx: click.Context, opts: dict):
    """The TrainConfig from defaults, then the preset, then the options given explicitly."""
    from ..config import CoMIPNConfig
    from ..training import TrainConfig, apply_preset

    train_given = _given(ctx, _TRAIN_FIELDS)
    model_given = _given(ctx, _MODEL_FIELDS)
    if opts["text_only"]:
        model_given.update(use_prompt=False, use_dynamic_matching=False, use_contrastive=False)
    train_opts, model_opts = apply_preset(opts["preset"], train_given, model_given)
    model_defaults = {name: opts[name] for name in _MODEL_FIELDS if opts.get(name) is not None}
    model = CoMIPNConfig(**{**model_defaults, **model_opts})
    train_defaults = {name: opts[name] for name in _TRAIN_FIELDS}
    merged = {**train_defaults, **train_opts}
    run_dir = opts["run_dir"] or os.path.join("runs", opts["dataset"])
    return TrainConfig(data_root=opts["data_root"], dataset=opts["dataset"], run_dir=run_dir, model=model,
                       **merged)


def _register() -> None:
    from . import predict_cmd

    main.add_command(predict_cmd.predict)


_register()
