"""``comipn-train predict``: tag new tweets (CoNLL, plain text or JSONL) with a saved model."""

from __future__ import annotations

import click

from comipn_model.cli.errors import fail_fast


@click.command()
@click.option("--load-path", required=True,
              help="best.pt, a run folder, or an exported model folder (comipn-train export); with --from-hub, "
                   "a Hugging Face Hub repository id (owner/name).")
@click.option("--from-hub", is_flag=True,
              help="Read a --load-path that is no local file or folder as a Hub repository id and download it.")
@click.option("--input", "input_", required=True, type=click.Path(dir_okay=False),
              help="Tweets to tag: CoNLL (IMGID lines; tokens with or without gold labels), plain text (one "
                   "raw tweet per line) or JSONL ({\"text\" | \"tokens\", \"image\", \"id\"} per line).")
@click.option("--input-format", type=click.Choice(["auto", "conll", "text", "jsonl"]), default="auto",
              show_default=True, help="auto: .jsonl/.json is JSONL; IMGID or tab-separated lines are CoNLL; "
                                      "anything else is plain text.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file: CoNLL (token, [gold,] predicted) or JSONL (.jsonl); input order and ids kept.")
@click.option("--format", "fmt", type=click.Choice(["conll", "jsonl"]), help="Default: from --out's suffix.")
@click.option("--text-model", help="Folder with the encoder's config and tokenizer, if moved since training.")
@click.option("--images-dir", type=click.Path(file_okay=False),
              help="CoNLL: folder of <imgid>.jpg; JSONL: where relative \"image\" paths start (default: the "
                   "file's folder).")
@click.option("--aux-dict", type=click.Path(dir_okay=False),
              help="Aux dict of prepared crops (CoNLL input); without it images are grounded on the fly.")
@click.option("--crops-dir", type=click.Path(file_okay=False), help="Folder of the prepared crops.")
@click.option("--feature-cache", type=click.Path(file_okay=False), help="Cache of visual features of image files.")
@click.option("--clip-pretrained", help="Weights of the model's CLIP tower if not the training's: a local file, "
                                        "or none (random).")
@click.option("--matching-tower", help="Dynamic matching's DINO tower (Hub name or local folder) if not the one "
                                       "recorded in the model (e.g. its folder moved).")
@click.option("--detector", help="Grounding on the fly: YOLO weights (.pt) or model .yaml (random weights), "
                                 "if not the training's.")
@click.option("--trust-detector", is_flag=True,
              help="Load the detector recorded in the model even when it is a .pt file (a pickle, which can run "
                   "code): only for a model whose maker you trust. Without it a recorded detector loads only when "
                   "it is one of ultralytics' own model names (yolov8n.yaml, yolov8n.pt).")
@click.option("--ground-clip-pretrained", help="Grounding on the fly: CLIP weights (a local file, or none), "
                                               "if not the training's.")
@click.option("--conf", type=click.FloatRange(0, 1), help="Grounding on the fly: detector confidence threshold, "
                                                          "if not the training's.")
@click.option("--np-backend", type=click.Choice(["auto", "textblob", "spacy", "nltk"]),
              help="Noun-phrase chunker for grounding on the fly (default: the training data's).")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Tweets per batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 on CUDA, fp32 on CPU (training's evaluation, same tags); bf16 on a CPU is faster "
                   "where it has bf16 instructions, and a few tags may differ.")
@click.option("--scores/--no-scores", default=True, show_default=True,
              help="Each entity's \"score\": the CRF's exact probability that this span is one entity of this "
                   "type (--no-scores: null, a little faster).")
@click.option("--marginals", is_flag=True,
              help="JSONL output: each token's label probabilities (\"marginals\": {label: P} per token).")
@click.option("--linker", type=click.Choice(["auto", "matching", "clip", "largest", "none"]), default="auto",
              show_default=True, callback=lambda ctx, param, value: None if value == "none" else value,
              help="Give each entity (JSONL) a region from the tweet's crops: \"box\" [x1, y1, x2, y2] in the image's "
                   "pixels or null (\"box_reason\" says why), \"box_score\". matching: the model's own word-to-crop "
                   "relevance; clip: CLIP's \"a photo of <entity>\" against each crop; largest: the largest crop (a "
                   "baseline). Prepared crops take their boxes from grounding's manifest.csv. auto: matching when "
                   "the model has a region head (trained with --region-weight), else a null box saying why; none: no "
                   "regions.")
@click.option("--none-threshold", type=float,
              help="With --linker: below this score an entity is \"none\" (not in the picture); -inf: never. "
                   "[default: the threshold saved with the model for that linker (regions.json), else never]")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@click.option("--allow-empty", is_flag=True,
              help="Write an empty --out for an input without tweets (e.g. a shard of a job array that may be "
                   "empty); without it such an input is an error (exit 2), as it usually is a wrong file.")
@click.option("--allow-missing-images", is_flag=True,
              help="CoNLL: tag although --images-dir holds none, or under half, of the input's images (they are "
                   "masked); without it that is an error (exit 2), as it usually is a wrong folder.")
def predict(load_path, input_, input_format, out, fmt, text_model, images_dir, aux_dict, crops_dir, feature_cache,
            clip_pretrained, matching_tower, detector, ground_clip_pretrained, conf, np_backend, batch_size, device,
            precision, force, from_hub, trust_detector, allow_empty, allow_missing_images, scores, marginals, linker,
            none_threshold) -> None:
    """Tag new tweets with a saved model; images are optional, and raw ones are grounded on the fly.

    The input is read and checked before the model loads. JSONL output gives each entity's type
    ("entity_group"), probability ("score"), text ("word") and character offsets ("start", "end") in the
    tweet's "text" (with --linker also its region: "box", "box_score"); it says per tweet whether its image
    was used ("image_used", and a "reason" when not) and per crop likewise; unreadable files are masked and
    logged."""
    from comipn_model.inference.predict import PredictOptions, predict_file

    grounding = {}
    if detector:
        grounding["detector"] = detector
    if ground_clip_pretrained:
        grounding["clip_pretrained"] = ground_clip_pretrained
    if conf is not None:
        grounding["conf"] = conf
    with fail_fast():
        n = predict_file(PredictOptions(load_path=load_path, input=input_, out=out, fmt=fmt,
                                        input_format=input_format, text_model=text_model, images_dir=images_dir,
                                        aux_dict=aux_dict, crops_dir=crops_dir, feature_cache=feature_cache,
                                        clip_pretrained=clip_pretrained, matching_tower=matching_tower,
                                        grounding=grounding,
                                        np_backend=np_backend, batch_size=batch_size, device=device,
                                        precision=precision, force=force, from_hub=from_hub,
                                        trust_detector=trust_detector, allow_empty=allow_empty,
                                        allow_missing_images=allow_missing_images, scores=scores,
                                        marginals=marginals, linker=linker, none_threshold=none_threshold))
    click.echo(f"tagged {n} tweets -> {out}")
