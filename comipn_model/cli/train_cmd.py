"""``comipn-train`` itself (the group's own command): train, resume or score a checkpoint from the
command-line options."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from comipn_model.cli.config_option import FILE_KEY
from comipn_model.cli.errors import fail_fast

log = logging.getLogger("comipn_model.cli")

TRAIN_FIELDS = ["epochs", "batch_size", "eval_batch_size", "lr", "new_lr", "crf_lr", "weight_decay",
                "warmup_ratio", "grad_clip", "seed", "sample_ratio", "device", "amp", "max_steps",
                "eval_every_epoch", "bucket", "feature_cache", "save_steps", "report_to", "allow_missing_images",
                "seeds", "compile", "compile_mode"]
MODEL_FIELDS = ["text_model", "random_init", "clip_model", "clip_pretrained", "matching_tower", "prompt_len",
                "embed_dim", "aux_k",
                "use_prompt", "use_dynamic_matching", "use_contrastive", "visual_norm", "separate_path_encoders",
                "path_gate",
                "contrastive_weight", "contrastive_temperature", "region_weight", "dropout", "max_seq"]
SWITCHES = ("use_prompt", "use_dynamic_matching", "use_contrastive")
# Options about this invocation itself, never part of a run's config.
_INVOCATION = {"verbose", "quiet", "no_progress", "resume", "run_dir", "force", "only_test", "load_path", "config"}
# What --resume takes; everything else comes from the run's config.json.
_RESUME_TAKES = {"device", "epochs", "data_root", "seeds"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def given(ctx: click.Context, names=None) -> dict:
    """The options the user set on the command line (presets fill in the rest)."""
    names = ctx.params if names is None else names
    return {name: ctx.params[name] for name in names
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}


def run(ctx: click.Context, opts: dict) -> None:
    if opts["resume"] and opts["only_test"]:
        raise click.UsageError("--resume and --only-test do not go together")
    if opts["resume"]:
        if not opts["run_dir"]:
            raise click.UsageError("--resume needs --run-dir (the run to continue)")
        with fail_fast():
            cfg = resume_config(ctx, opts)
        _train(cfg, opts, resume=True)
        return
    if not opts["data_root"] or not opts["dataset"]:
        raise click.UsageError("--data-root and --dataset are needed to train (or name a subcommand)")
    if opts["only_test"]:
        if not opts["load_path"]:
            raise click.UsageError("--only-test needs --load-path CKPT")
        _only_test(ctx, opts)
        return
    with fail_fast():
        cfg = build_config(ctx, opts)
    _train(cfg, opts, resume=False)


def build_config(ctx: click.Context, opts: dict):
    """The TrainConfig from defaults, then the preset, then the options given explicitly."""
    from comipn_model.network.config import CoMIPNConfig
    from comipn_model.training.config import TrainConfig, apply_preset, default_run_dir

    train_given = given(ctx, TRAIN_FIELDS)
    model_given = given(ctx, MODEL_FIELDS)
    if opts["text_only"]:
        model_given.update({name: False for name in SWITCHES})
    train_opts, model_opts = apply_preset(opts["preset"], train_given, model_given)
    model_defaults = {name: opts[name] for name in MODEL_FIELDS if opts.get(name) is not None}
    if model_opts.get("matching_tower") and model_opts.get("use_dynamic_matching") is False:
        # Only matching reads the tower: a run without it keeps no tower in its config.
        log.warning("--matching-tower %s is not used: dynamic matching is off", model_opts["matching_tower"])
        model_opts["matching_tower"] = None
    model = CoMIPNConfig(**{**model_defaults, **model_opts})
    merged = {**{name: opts[name] for name in TRAIN_FIELDS}, **train_opts}
    run_dir = opts["run_dir"] or default_run_dir(opts["dataset"])
    experiment = ctx.meta.get(FILE_KEY)
    config_file = str(experiment.path.absolute()) if experiment is not None else None
    return TrainConfig(data_root=opts["data_root"], dataset=opts["dataset"], run_dir=run_dir, model=model,
                       config_file=config_file, **merged)


def resume_config(ctx: click.Context, opts: dict):
    """The run's config.json with what a resume may change; a warning for every other option given."""
    from comipn_model.training.config import resume_config as saved_config

    set_here = given(ctx)
    ignored = sorted(set(set_here) - _RESUME_TAKES - _INVOCATION)
    cfg = saved_config(opts["run_dir"], device=opts["device"], epochs=set_here.get("epochs"),
                       data_root=set_here.get("data_root"), seeds=set_here.get("seeds"))
    saved = {**cfg.to_dict(), **cfg.model.to_dict()}
    for name in ignored:
        kept = f" (the run's value: {saved[name]})" if name in saved else ""
        log.warning("--resume ignores %s: the run goes on with its config.json%s", _flag(name), kept)
    if "epochs" in set_here:
        log.info("--epochs %d: the learning-rate schedule now spans %d epochs", cfg.epochs, cfg.epochs)
    if "seeds" in set_here:
        log.info("--seeds: the run goes on with seeds %s", ",".join(map(str, cfg.seeds)))
    return cfg


def _train(cfg, opts: dict, *, resume: bool) -> None:
    from comipn_model.training.loop import train
    from comipn_model.training.seeds import format_summary, train_seeds

    try:
        with fail_fast():
            if cfg.seeds:
                several = train_seeds(cfg, resume=resume, force=opts["force"])
                result = several.stopped
                if result is None:
                    if several.summary is not None:  # rank 0
                        click.echo(format_summary(several.summary))
                        click.echo(f"-> {several.run_dir / 'seeds.json'}")
                    return
            else:
                result = train(cfg, resume=resume, force=opts["force"])
    except KeyboardInterrupt:
        # Before training started (no handler yet), or a second Ctrl-C: last.pt, if any, is the last save.
        from comipn_model.saved.run_folder import LAST

        run_dir = cfg.absolute().run_dir
        if cfg.seeds:  # a multi-seed run resumes as a whole, at the seed it was in
            click.echo(f"interrupted; resume with: {shlex.join(_resume_command(run_dir, opts))}", err=True)
        elif (Path(run_dir) / LAST).is_file():
            click.echo(f"interrupted at once; {Path(run_dir) / LAST} holds the last saved step\n"
                       f"resume with: {shlex.join(_resume_command(run_dir, opts))}", err=True)
        else:
            click.echo("interrupted before training started: nothing was written", err=True)
        sys.exit(130)
    if result.signal is not None:
        from comipn_model.training.signals import exit_code

        run_dir = str(result.run_dir)
        resume_dir = str(cfg.absolute().run_dir) if cfg.seeds else run_dir  # seeds resume as a whole
        click.echo(f"stopped at step {result.global_step} (epoch {result.epoch + 1}, batch {result.batches_done} "
                   f"of {result.steps_per_epoch}); last.pt saved in {run_dir}\n"
                   f"resume with: {shlex.join(_resume_command(resume_dir, opts))}", err=True)
        sys.exit(exit_code(result.signal))
    if result.test is not None:
        click.echo(f"best dev F1 {result.best_dev_f1:.4f} (epoch {result.best_epoch}); "
                   f"test F1 {result.test['overall']['f1']:.4f} -> {result.run_dir}")


def _resume_command(run_dir: str, opts: dict) -> list[str]:
    command = ["comipn-train", "--run-dir", run_dir, "--resume"]
    if opts["device"] != "auto":
        command += ["--device", opts["device"]]
    return command


def _same_place(given_ref: str | None, saved: str | None) -> bool:
    """A model reference given here names what the checkpoint recorded (a local folder as an absolute path)."""
    from comipn_model.network.config import CoMIPNConfig

    given_ref = CoMIPNConfig(matching_tower=given_ref).matching_tower
    if given_ref is None or saved is None:
        return given_ref == saved
    local = Path(given_ref).expanduser()
    return given_ref == saved or (local.exists() and str(local.absolute()) == saved)


def _only_test(ctx: click.Context, opts: dict) -> None:
    """Score a checkpoint with its own model: a model option that says otherwise is refused."""
    from comipn_model.saved import run_folder as rf
    from comipn_model.network.config import CoMIPNConfig
    from comipn_model.training.config import TrainConfig, default_run_dir
    from comipn_model.training.evaluate import only_test

    with fail_fast():
        state = rf.load_checkpoint(opts["load_path"])
        saved = CoMIPNConfig.from_dict(state["model_config"])
        model_given = given(ctx, MODEL_FIELDS)
        model_given.pop("text_model", None)  # where the encoder's files are now: allowed
        model_given.pop("random_init", None)  # the weights come from the checkpoint anyway
        if opts["text_only"]:
            model_given.update({name: False for name in SWITCHES})
        conflicts = [f"{_flag(k)} {v} (the checkpoint has {getattr(saved, k)})"
                     for k, v in model_given.items() if getattr(saved, k) != v and not
                     (k == "clip_pretrained" and CoMIPNConfig(clip_pretrained=v).clip_pretrained == saved.clip_pretrained)
                     and not (k == "matching_tower" and _same_place(v, saved.matching_tower))]
        if conflicts:
            raise ValueError(f"--only-test scores {opts['load_path']} with its own model: "
                             f"{'; '.join(conflicts)}; leave these options out")
        ignored = sorted(set(given(ctx, TRAIN_FIELDS)) - {"device", "eval_batch_size", "amp", "feature_cache",
                                                          "allow_missing_images"})
        if opts["preset"]:
            ignored.append("preset")
        for name in ignored:
            log.warning("--only-test ignores %s (it trains nothing)", _flag(name))
        cfg = TrainConfig(data_root=opts["data_root"], dataset=opts["dataset"],
                          run_dir=opts["run_dir"] or default_run_dir(opts["dataset"]),
                          eval_batch_size=opts["eval_batch_size"], amp=opts["amp"], device=opts["device"],
                          feature_cache=opts["feature_cache"], allow_missing_images=opts["allow_missing_images"])
        result = only_test(cfg, opts["load_path"], force=opts["force"], text_model=opts["text_model"])
    click.echo(f"test F1 {result['overall']['f1']:.4f} -> {cfg.run_dir}")
