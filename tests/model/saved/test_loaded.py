"""comipn_model.saved.loaded: a saved model config is read as it was written, or refused in one line that
names the file and this comipn's version (never half-loaded)."""

from __future__ import annotations

import re

import pytest

from comipn_model.network.config import CoMIPNConfig
from comipn_model.saved.loaded import model_config_of
from comipn_model.version import __version__


def test_a_saved_config_reads_back_as_it_was(tmp_path):
    config = CoMIPNConfig(text_model="enc", use_prompt=False, aux_k=1, prompt_len=6)
    assert model_config_of(config.to_dict(), tmp_path / "best.pt") == config


def test_a_config_of_another_version_names_the_file_the_fields_and_this_version(tmp_path):
    data = {**CoMIPNConfig().to_dict(), "future_switch": True}
    message = (f"{tmp_path / 'best.pt'}: a model from another comipn version (unknown CoMIPNConfig fields: "
               f"future_switch); this is comipn {__version__}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model_config_of(data, tmp_path / "best.pt")
    with pytest.raises(ValueError, match="another comipn version"):
        model_config_of({**CoMIPNConfig().to_dict(), "aux_k": 7}, tmp_path / "best.pt")  # a value it refuses
