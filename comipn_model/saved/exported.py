"""A trained model as a self-contained folder that loads without unpickling anything.

```
config.json          format, model config (labels included), the grounding / NP settings of training,
                     the checkpoint's epoch and dev F1, the run's test figures
model.safetensors    the weights
text_encoder/        the text encoder's config.json and tokenizer files (weights are in model.safetensors)
README.md            a model card (huggingface_hub's): YAML metadata with the Hub's model-index (the run's
                     test precision / recall / F1), what it tags, its switches, how to load it
```

The file names follow the Hugging Face Hub's conventions (``config.json`` + ``model.safetensors``), so
the folder can be uploaded as is (``Tagger.push_to_hub``) and loaded back by repository id.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path


from comipn_prep.conll import atomic_write_bytes
from comipn_prep.folder_lock import hold_folder

from comipn_model.network.multipath import PATH_TEXT
from comipn_model.saved import run_folder as rf
from comipn_model.saved.loaded import LoadedModel, model_config_of
from comipn_model.saved.regions_record import REGIONS_FILE, read_regions, regions_path
from comipn_model.version import __version__

log = logging.getLogger(__name__)

FORMAT = "comipn-tagger"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ENCODER_DIR = "text_encoder"
CARD_NAME = "README.md"
LICENSE_KEY = "license"


def is_exported(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def read_exported(folder: Path) -> LoadedModel:
    """An exported folder: ``config.json`` (JSON) and ``model.safetensors`` (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path = folder / CONFIG_NAME
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{config_path}: not a comipn model folder (no \"format\": \"{FORMAT}\")")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{config_path}: model folder format {version!r} (comipn {data.get('comipn_version')}); "
                         f"this comipn {__version__} reads format {FORMAT_VERSION}: upgrade comipn")
    model = dict(data.get("model") or {})
    config = model_config_of(model, config_path)
    config.text_model = str(folder / data.get("text_encoder", ENCODER_DIR))
    config.random_init = True  # the weights come from model.safetensors
    try:
        state = load_file(folder / WEIGHTS_NAME)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{folder / WEIGHTS_NAME}: not readable safetensors ({err})") from None
    prep = {"grounding": data.get("grounding"), "np_backend": data.get("np_backend")}
    meta = dict(data.get("training") or {})
    if data.get("license"):
        meta[LICENSE_KEY] = data["license"]  # carried on by a re-export
    return LoadedModel(config, state, prep, folder, meta)


# -- writing -----------------------------------------------------------------------------------------
def made_by_export(folder: Path) -> bool:
    """Whether ``folder`` is one an export wrote: its ``config.json`` says ``"format": "comipn-tagger"``
    (the marker; a run folder's config.json is a TrainConfig and has no such key)."""
    try:
        data = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def check_export_target(out: Path, force: bool) -> None:
    """Refuse, before anything is loaded or written, every ``out`` but an absent or empty folder, or,
    with ``force``, a folder an earlier export made. A run folder, or any folder of the user's, is never
    written into: export's ``config.json`` and ``README.md`` would replace theirs."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} is a file; nothing was written: --out takes a folder of its own")
    if not any(out.iterdir()):
        return
    if made_by_export(out):
        if not force:
            raise FileExistsError(f"{out} holds an earlier export; nothing was written: pass --force to replace it")
        return
    # config.json alone says nothing: a run's and the user's own share the name.
    run_files = sorted(p.name for p in out.iterdir() if p.name in (*rf.RUN_FILES, rf.TENSORBOARD) and p.name != CONFIG_NAME)
    what = (f"a training run folder ({', '.join(run_files)})" if run_files else
            f"not empty and was not made by an export (no {CONFIG_NAME} with \"format\": \"{FORMAT}\")")
    raise FileExistsError(f"{out} is {what}; nothing was written: give --out a new or empty folder "
                          f"(--force replaces only an earlier export)")


def write_exported(model, loaded: LoadedModel, out_dir: str | os.PathLike, *, force: bool = False,
                   license: str | None = None) -> Path:
    """Write a built network and what it was loaded with; the files are made in a temporary folder
    beside ``out_dir`` and moved in at the end (an interrupted export leaves no half folder).
    ``out_dir`` must be new, empty, or (with ``force``) an earlier export: see :func:`check_export_target`.
    A second export to the same ``out_dir`` while this one runs is refused (:mod:`comipn_prep.folder_lock`).
    ``license``: the card's ``license`` (a Hub license id); None: an exported source's, else ``unknown``."""
    out = Path(out_dir)
    # The lock sits beside --out, not in it: an empty --out must stay empty for the check.
    with hold_folder(out.parent, export_lock_name(out), what=f"export target {out.name}"):
        check_export_target(out, force)
        _write_into(model, loaded, out, license)
    log.info("exported %s -> %s", loaded.source, out)
    return out


def export_lock_name(out: Path) -> str:
    """The lock one export to ``out`` holds in ``out``'s parent folder (one writer per export target)."""
    return f".{out.name}.comipn-export.lock"


def _write_into(model, loaded: LoadedModel, out: Path, license: str | None = None) -> None:
    from safetensors.torch import save_file

    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        encoder = model.encoder_for(PATH_TEXT)
        encoder.config.save_pretrained(tmp / ENCODER_DIR)
        model.tokenizer.save_pretrained(tmp / ENCODER_DIR)
        # safetensors refuses tensors that share memory: each gets its own contiguous copy.
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(tensors, tmp / WEIGHTS_NAME, metadata={"format": "pt", "comipn_version": __version__})
        model_dict = loaded.config.to_dict()
        trained_text_model = model_dict.pop("text_model")
        model_dict.pop("random_init", None)
        training = {**loaded.meta}
        license = license or training.pop(LICENSE_KEY, None) or "unknown"
        training.pop(LICENSE_KEY, None)
        training.setdefault("text_model", trained_text_model)
        training.setdefault("checkpoint", str(loaded.source))
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, "comipn_version": __version__,
                "model_type": "comipn", "text_encoder": ENCODER_DIR, "labels": loaded.config.labels,
                "model": model_dict, "grounding": loaded.prep.get("grounding"),
                "np_backend": loaded.prep.get("np_backend"), "training": training, "license": license}
        (tmp / CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        atomic_write_bytes(tmp / CARD_NAME, model_card(data).encode("utf-8"))
        if Path(str(loaded.source)).exists() and read_regions(loaded.source) is not None:
            # the region linker and its dev-chosen "none" threshold go with the model
            shutil.copyfile(regions_path(loaded.source), tmp / REGIONS_FILE)
        out.mkdir(parents=True, exist_ok=True)
        # Only the export's own entries are replaced; anything else in an earlier export stays.
        for item in sorted(tmp.iterdir()):
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pct(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "n/a"


DATASET_NAMES = {"twitter2015": "Twitter-2015", "twitter2017": "Twitter-2017", "sample": "comipn sample"}


def encoder_shown(text_model: str | None) -> tuple[str, str | None]:
    """How the card names the text encoder, and its ``base_model``: a Hub id as itself (and as the
    base model); a local folder by its folder name only (the exporting machine's path says nothing to a
    reader, and may say too much)."""
    from comipn_prep.model_refs import classify

    if not text_model:
        return "unknown", None
    ref = classify(text_model)
    if ref.is_hub:
        return text_model, text_model
    return f"{Path(text_model).expanduser().name} (a local folder)", None


def entity_types(labels) -> list[str]:
    """The entity types of a BIO label set, in the label set's order."""
    return list(dict.fromkeys(label.split("-", 1)[1] for label in labels if "-" in label))


def card_metadata(data: dict):
    """The card's YAML metadata as ``huggingface_hub.ModelCardData``: the Hub's ``model-index`` with the
    run's reported test figures (seqeval micro precision / recall / F1) and dev F1, ``datasets``,
    ``metrics``, ``base_model`` (a Hub encoder only), ``license``."""
    from huggingface_hub import EvalResult, ModelCardData

    training = data.get("training") or {}
    test = training.get("test") or {}
    overall = test.get("overall") or {}
    dataset = test.get("dataset") or training.get("dataset")
    _, base_model = encoder_shown(training.get("text_model"))
    results = []
    if dataset:
        pretty = DATASET_NAMES.get(dataset, dataset)
        common = {"task_type": "token-classification", "task_name": "Named entity recognition",
                  "dataset_type": dataset, "dataset_name": pretty}
        for key, name in (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall")):
            if isinstance(overall.get(key), (int, float)):
                results.append(EvalResult(**common, dataset_split="test", metric_type=key,
                                          metric_name=f"seqeval micro {name} (test)", metric_value=overall[key]))
        if isinstance(training.get("dev_f1"), (int, float)):
            results.append(EvalResult(**common, dataset_split="validation", metric_type="f1",
                                      metric_name="seqeval micro F1 (dev, checkpoint selection)",
                                      metric_value=training["dev_f1"]))
    return ModelCardData(
        model_name=f"comipn-{dataset or 'tagger'}", language="en", license=data.get("license") or "unknown",
        library_name="comipn", pipeline_tag="token-classification", base_model=base_model,
        datasets=[dataset] if dataset else None, metrics=["seqeval"],
        tags=["ner", "token-classification", "multimodal", "twitter", "co-mipn"],
        eval_results=results or None)


def model_card(data: dict) -> str:
    """A Hub model card (README.md with YAML front matter, rendered by ``huggingface_hub.ModelCard``)
    from the exported config: the labels and crops are the run's own."""
    from huggingface_hub import ModelCard

    model, training = data["model"], data.get("training") or {}
    switches = [name for name in ("use_prompt", "use_dynamic_matching", "use_contrastive") if model.get(name)]
    test = training.get("test") or {}
    overall = test.get("overall") or {}
    encoder, _ = encoder_shown(training.get("text_model"))
    types = entity_types(data.get("labels") or model.get("labels") or [])
    aux_k = int(model.get("aux_k") or 0)
    crops = (f"{aux_k} object crop{'s' if aux_k != 1 else ''} per tweet" if aux_k else
             "no object crops (the whole image only)")
    tower = model.get("matching_tower") if model.get("use_dynamic_matching") else None
    if tower:  # dynamic matching's patches from a DINO tower, not CLIP's
        crops += f"; dynamic matching's patches from `{encoder_shown(tower)[0]}`"
    dataset = test.get("dataset") or training.get("dataset")
    lines = [f"# Co-MIPN tagger ({DATASET_NAMES.get(dataset, dataset) if dataset else 'custom data'})", "",
             f"Multimodal named entity recognition for tweets ({', '.join(types) or 'no entity type'}): text "
             f"encoder `{encoder}`, switches: {', '.join(switches) or 'none (text-only BERT-CRF)'}"
             + (f"; vision tower `{model.get('clip_model')}` ({model.get('clip_pretrained') or 'random weights'}), "
                f"{crops}." if switches else "; reads no image."), "",
             "## Figures", "",
             "Entity-level micro precision / recall / F1 (seqeval, conlleval's reading of BIO), as the run "
             "reported them.", "",
             "| split | precision | recall | F1 |", "| --- | --- | --- | --- |",
             f"| dev (epoch {training.get('epoch')}) | | | {_pct(training.get('dev_f1'))} |",
             f"| test ({test.get('tweets', 'n/a')} tweets) | {_pct(overall.get('precision'))} | "
             f"{_pct(overall.get('recall'))} | {_pct(overall.get('f1'))} |", ""]
    per_type = test.get("per_type") or {}
    if per_type:
        lines += ["| test, per type | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {t} | {_pct(s.get('precision'))} | {_pct(s.get('recall'))} | {_pct(s.get('f1'))} | "
                  f"{s.get('support')} |" for t, s in sorted(per_type.items())]
        lines.append("")
    grounding = data.get("grounding")
    lines += ["## Grounding settings of training", ""]
    if grounding:
        lines += [f"- `{k}`: `{v}`" for k, v in sorted(grounding.items())]
    else:
        lines.append("- not recorded (crops made outside `comipn-prep`); the tagger uses its defaults")
    lines += [f"- noun phrases: `{data.get('np_backend') or 'auto'}`", "", "## Use", "", "```python",
              "from comipn_model import Tagger", "", "tagger = Tagger.from_pretrained(\"path/or/user-name\")",
              "result = tagger([\"Elon Musk visits Paris today\"], images=[\"photo.jpg\"])[0]",
              "for entity in result.entities:  # entity_group, score, word, start, end (characters)",
              "    print(entity)", "```", "",
              f"Made by comipn {data['comipn_version']} (`comipn-train export`).", ""]
    content = f"---\n{card_metadata(data).to_yaml()}\n---\n\n" + "\n".join(lines)
    return str(ModelCard(content))
