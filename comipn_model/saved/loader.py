"""The one loader: a run folder, a ``best.pt`` / ``last.pt``, an exported folder or (asked for) a Hub
repository id -> :class:`~comipn_model.saved.loaded.LoadedModel` (:func:`load_source`) -> the network with
its weights (:func:`build_network`). Resuming, test scoring, ``--only-test``, predict, the ``Tagger`` and
export all load through here; nothing is unpickled beyond ``torch.load(weights_only=True)``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from comipn_model.network.build import build_model, load_weights
from comipn_model.network.config import CoMIPNConfig
from comipn_model.network.matching_tower import check_recorded_matching_tower, recordable
from comipn_model.network.model import CoMIPN
from comipn_model.network.text_encoder import check_text_encoder
from comipn_model.saved import run_folder as rf
from comipn_model.saved.exported import CARD_NAME, CONFIG_NAME, ENCODER_DIR, WEIGHTS_NAME, is_exported, read_exported
from comipn_model.saved.loaded import LoadedModel, model_config_of


def resolve_source(path: str | os.PathLike, *, from_hub: bool = False) -> Path:
    """A local checkpoint / run folder / exported folder, or (only with ``from_hub``) a Hub repository id.

    An existing path is local. One that looks like a path (``./x``, ``~/x``, ``/x``, ``a/b/c``) and is not
    there is "no such file or folder". A bare ``owner/name`` is downloaded only when the caller asks for
    the Hub (``--from-hub`` / ``from_hub=True``): a mistyped local folder must never fetch whatever a
    stranger has put under that name."""
    from comipn_prep.model_refs import HUB, PATH, classify, hub_offline, not_a_local_folder, offline_why

    ref = classify(path)
    if ref.kind == PATH:
        return ref.path
    text = ref.text
    if ref.kind != HUB:
        raise FileNotFoundError(f"{text}: no such checkpoint, run folder or exported model: no such folder or "
                                f"file ({Path(text).expanduser().absolute()} does not exist)")
    if not from_hub:
        raise FileNotFoundError(f"{not_a_local_folder(text)}; to download the Hugging Face Hub repository {text} "
                                f"pass --from-hub (Python: from_hub=True)")
    try:
        from huggingface_hub import snapshot_download

        # Only the files an exported model is made of: nothing else of the repository reaches the disk.
        return Path(snapshot_download(repo_id=text, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, f"{ENCODER_DIR}/*",
                                                                    CARD_NAME]))
    except Exception as err:  # noqa: BLE001 - offline, unknown repo, no access: all one answer
        if hub_offline():
            raise FileNotFoundError(f"{text} was read as a Hugging Face Hub id (--from-hub), but it is not in the "
                                    f"local cache and the Hub is not reached ({offline_why()}); unset that to "
                                    f"download it, or pass a local folder") from None
        raise FileNotFoundError(f"{text} was read as a Hugging Face Hub id (--from-hub), and the Hub did not give "
                                f"it ({type(err).__name__}: {err})") from None


def load_source(path: str | os.PathLike, *, from_hub: bool = False) -> LoadedModel:
    """Read a ``best.pt``, a run folder (its best.pt) or an exported folder (or, with ``from_hub``, a
    Hub repository id: see :func:`resolve_source`); nothing is unpickled beyond
    ``torch.load(weights_only=True)``, and an exported folder not even that.

    The settings recorded in it (``prep.grounding`` / ``grounding``: detector, CLIP weights) are only
    read here; :class:`comipn_model.Tagger` decides what of them may be loaded without the user's say-so."""
    source = resolve_source(path, from_hub=from_hub)
    if source.is_dir():
        if is_exported(source):
            return read_exported(source)
        if (source / rf.BEST).is_file():
            source = source / rf.BEST
        else:
            raise FileNotFoundError(f"{source}: neither a run folder (best.pt) nor an exported model "
                                    f"({CONFIG_NAME} + {WEIGHTS_NAME})")
    state = rf.load_checkpoint(source)
    config = model_config_of(state["model_config"], source)
    meta = {"epoch": state.get("epoch"), "dev_f1": state.get("dev_f1")}
    report = source.parent / rf.TEST_REPORT
    if report.is_file():
        try:
            test = json.loads(report.read_text(encoding="utf-8"))
            meta["test"] = {"overall": test.get("overall"), "per_type": test.get("per_type"),
                            "dataset": test.get("dataset"), "tweets": test.get("tweets")}
        except ValueError:
            pass
    train_config = state.get("train_config") or {}
    meta["dataset"] = train_config.get("dataset")
    prep = state.get("prep") or {"grounding": None, "np_backend": None}
    return LoadedModel(config, state["model"], prep, source, meta, checkpoint=state)


def build_network(loaded: LoadedModel, device: torch.device, built_from: str = "the config saved with them") -> CoMIPN:
    """The CoMIPN network of what :func:`load_source` read, in eval mode on ``device``: the encoder is built
    from its config (no second weights load), then every tensor is checked against the config and loaded.
    ``built_from``: what the config came from, for the message when the weights do not fit it."""
    config = CoMIPNConfig.from_dict(loaded.config.to_dict())
    config.random_init = True  # the architecture from its config; the weights come from the file
    # Said as it is in the log: the weights are the checkpoint's, not random ones.
    model = build_model(config, torch.device("cpu"), weights=f"weights from {loaded.source}")
    load_weights(model, loaded.state, loaded.source, built_from)
    return model.to(device).eval()


def load_model(path: str | os.PathLike | LoadedModel, device: torch.device, *, text_model: str | None = None,
               from_hub: bool = False, matching_tower: str | None = None) -> tuple[CoMIPN, LoadedModel]:
    """``build_network(load_source(path))``, with the encoder's config and tokenizer checked first:
    ``(model in eval mode, what was read)``. ``path`` may be what :func:`load_source` read already (the
    file is not read twice). ``text_model``: where the encoder's config and tokenizer are now, if not
    where the model recorded them; ``matching_tower`` likewise for the matching tower (a recorded one is
    checked as :func:`check_recorded_matching_tower` says)."""
    loaded = path if isinstance(path, LoadedModel) else load_source(path, from_hub=from_hub)
    built_from = f"the text encoder {loaded.config.text_model} recorded in {loaded.source}"
    if text_model:
        loaded.config.text_model = text_model
        built_from = f"--text-model {text_model}"
    if matching_tower:
        loaded.config.matching_tower = recordable(matching_tower)
    elif loaded.config.tower_matching:
        check_recorded_matching_tower(loaded.config.matching_tower, f"{loaded.source} (model.matching_tower)",
                                      "--matching-tower")
    check_text_encoder(loaded.config.text_model, random_init=True)
    return build_network(loaded, device, built_from), loaded
