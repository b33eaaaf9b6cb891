"""What a model reference (``--text-model``, ``--load-path``, ...) names: a local path, a path that is
not there, or a Hugging Face Hub id; and a message that says which of the three it was.

The rule: a string that exists on disk is a path; one that *looks* like a path (starts with ``.``, ``~``
or ``/``, holds a backslash, an empty or ``..`` part, or more than one ``/``) but does not exist is "no
such folder"; only a bare ``name`` or ``owner/name`` is a Hub id. A mistyped local folder without ``./``
(``models/bert-base-uncased``) is an ``owner/name`` too, so the Hub id's messages also say that no local
folder of that name exists.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PATH = "path"  # exists on disk
MISSING = "missing"  # looks like a path, and nothing is there
HUB = "hub"  # a bare name or owner/name

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ModelRef:
    """A classified reference: ``kind`` is :data:`PATH`, :data:`MISSING` or :data:`HUB`."""

    text: str
    kind: str
    path: Path | None = None  # PATH: where it is (``~`` expanded)

    @property
    def is_hub(self) -> bool:
        return self.kind == HUB


def looks_like_path(text: str) -> bool:
    """Whether ``text`` can only be read as a path (never as a Hub id)."""
    if text.startswith((".", "~", "/")) or "\\" in text or (os.sep != "/" and os.sep in text):
        return True
    parts = text.split("/")
    if len(parts) > 2 or any(p in ("", ".", "..") for p in parts):
        return True
    return not _HUB_ID_RE.match(text)


def classify(ref: str | os.PathLike) -> ModelRef:
    """Classify a reference given by the user (``~`` is expanded: the user typed it)."""
    text = str(ref)
    local = Path(text).expanduser()
    if text and local.exists():
        return ModelRef(text, PATH, local)
    return ModelRef(text, MISSING if not text or looks_like_path(text) else HUB)


def hub_offline(*names: str) -> bool:
    """Whether the environment says the Hub is not to be reached (``HF_HUB_OFFLINE`` and the like)."""
    names = names or ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(n, "").strip().lower() in _TRUE for n in names)


def no_such_folder(ref: ModelRef | str, flag: str | None = None) -> str:
    """The message for a reference that looks like a path and is not there."""
    text = ref.text if isinstance(ref, ModelRef) else str(ref)
    hint = f"; pass an existing local folder with {flag}" if flag else ""
    return f"{text}: no such folder or file ({Path(text).expanduser().absolute()} does not exist){hint}"


def not_a_local_folder(text: str) -> str:
    """The first half of a Hub id's message: no local folder of that name either."""
    return f"{text}: no such local folder ({Path(text).absolute()} does not exist)"


def hub_unavailable(ref: ModelRef | str, why: str, flag: str | None = None) -> str:
    """The message for a Hub id that could not be had (``why``: e.g. "it is not in the local cache
    (offline: HF_HUB_OFFLINE=1)")."""
    text = ref.text if isinstance(ref, ModelRef) else str(ref)
    hint = f"; pass a local folder with {flag}" if flag else "; pass a local folder"
    return f"{not_a_local_folder(text)}, and read as a Hugging Face Hub id {why}{hint}"


def offline_why() -> str:
    """Which variable made the environment offline, for messages."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(name, "").strip()
        if value.lower() in _TRUE:
            return f"offline: {name}={value}"
    return "offline"


def in_hub_cache(repo_id: str, filename: str = "config.json") -> bool:
    """Whether ``filename`` of Hub repository ``repo_id`` is already in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot even look up is not cached
        return False
