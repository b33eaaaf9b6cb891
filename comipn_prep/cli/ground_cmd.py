"""``comipn-prep ground``: NPs + images -> object crops and a manifest per split."""

from __future__ import annotations

import contextlib
import sys

import click

from ..layout import expand_splits
from ..weights import WeightsUnavailable
from .errors import EXIT_BAD_INPUT, bad_input_exits


@contextlib.contextmanager
def model_input_exits():
    """Bad input and unavailable weights both exit 2 with a one-line message."""
    with bad_input_exits():
        try:
            yield
        except WeightsUnavailable as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)


def model_options(f):
    """The options every command that grounds shares (ground, run)."""
    options = [
        click.option("--detector", default="yolov8n.pt", show_default=True,
                     help="YOLO weights: a name (downloaded), a local .pt, or a model .yaml (random weights)."),
        click.option("--clip-model", default="ViT-B-32", show_default=True, help="open_clip model name."),
        click.option("--clip-pretrained", default="openai", show_default=True,
                     help="open_clip pretrained tag, a local weights file, or 'none' (random weights)."),
        click.option("--top-k", default=3, show_default=True, type=click.IntRange(0), help="Crops kept per image."),
        click.option("--conf", default=0.25, show_default=True, type=float,
                     help="Detector confidence threshold (random-weight YOLO scores are ~1e-4: use 0 there)."),
        click.option("--iou", default=0.5, show_default=True, type=click.FloatRange(0, 1),
                     help="Kept boxes overlapping a better one by more than this IoU are dropped."),
        click.option("--max-candidates", default=10, show_default=True, type=click.IntRange(1),
                     help="Candidate boxes per image from the detector."),
        click.option("--prompt", default="a photo of {}", show_default=True, help="CLIP text prompt for an NP."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1), help="Images per batch."),
        click.option("--crop-batch", default=16, show_default=True, type=click.IntRange(1),
                     help="Crops per CLIP forward pass."),
        click.option("--detector-batch", default=0, show_default=True, type=click.IntRange(0),
                     help="Images per YOLO call (0: 1 on CPU, where it is cheaper; 64 on GPU)."),
        click.option("--threads", default=0, show_default=True, type=click.IntRange(0),
                     help="torch CPU threads (0: torch's default)."),
        click.option("--input-path", default="ultralytics", show_default=True,
                     type=click.Choice(["ultralytics", "tensor"]),
                     help="How images reach YOLO: ultralytics (Pillow decoding, YOLO.predict per image) or tensor "
                          "(DataLoader workers, JPEGs decoded by torchvision on the device, letterbox and YOLO on "
                          "batch tensors); the same boxes and crops."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def safety_options(f):
    """The options that let a grounding command past a refusal that protects data (ground, run)."""
    f = click.option("--allow-missing-images", is_flag=True,
                     help="Go on when a split has no image on disk or under half of its images.")(f)
    f = click.option("--replace-foreign", is_flag=True,
                     help="Replace crops and dicts comipn did not write (e.g. HVPNeT's released ones); "
                          "without it such files stop the run before anything is written.")(f)
    return f


def config_from(kwargs: dict):
    from comipn_prep.grounding.driver import GroundConfig

    return GroundConfig(detector=kwargs["detector"], clip_model=kwargs["clip_model"],
                        clip_pretrained=kwargs["clip_pretrained"], top_k=kwargs["top_k"], conf=kwargs["conf"],
                        iou=kwargs["iou"], max_candidates=kwargs["max_candidates"], prompt=kwargs["prompt"],
                        device=kwargs["device"], batch_size=kwargs["batch_size"], crop_batch=kwargs["crop_batch"],
                        detector_batch=kwargs["detector_batch"], threads=kwargs["threads"],
                        input_path=kwargs["input_path"])


def echo_summaries(summaries) -> None:
    for s in summaries:
        counts = ", ".join(f"{k} {v}" for k, v in s.statuses.items())
        click.echo(f"{s.split}: {s.processed} images grounded ({s.skipped} already done), {s.crops} crops, "
                   f"{s.images_per_s:.2f} images/s; images by status: {counts}; manifest {s.manifest}")
        if s.random_weights:
            click.echo(f"{s.split}: RANDOM weights were used (manifest column random_weights); "
                       "the crops only test the plumbing")


@click.command()
@click.option("--nps", "nps_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder of <split>.nps.jsonl from extract-nps.")
@click.option("--images", "images_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="The tweets' images (<imgid>.jpg, or .png/.jpeg/.gif).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="AUX_DIR: crops go to AUX_DIR/<train|val|test>/crops/.")
@click.option("--split", default="all", show_default=True, help="train, valid (val), test or all.")
@model_options
@click.option("--shard", default=None, help="I/N: only every N-th image from the I-th (job arrays). Under "
                                             "torchrun each process takes its share of it by itself.")
@click.option("--force", is_flag=True, help="Redo images already in the manifest.")
@safety_options
@click.option("--limit", default=None, type=click.IntRange(1), help="At most N new images per split.")
def ground(nps_dir, images_dir, out_dir, split, shard, force, replace_foreign, allow_missing_images, limit,
           **kwargs) -> None:
    """Detect boxes, score them against each tweet's noun phrases with CLIP and save the top-K crops.

    Checks run before the first crop is written: images present, no crops comipn did not write in
    AUX_DIR (see --replace-foreign), models loadable."""
    from comipn_prep.grounding.shards import Shard
    from ..pipeline import ground_checked

    with model_input_exits():
        config = config_from(kwargs)
        summaries = ground_checked(nps_dir, images_dir, out_dir, expand_splits(split), config,
                                   shard=Shard.parse(shard).for_process(), force=force, limit=limit,
                                   replace_foreign=replace_foreign, allow_missing_images=allow_missing_images)
    echo_summaries(summaries)
