"""One bf16 autocast rule (comipn_model.network.precision) for evaluation and the Tagger."""

from __future__ import annotations

import pytest
import torch

from comipn_model.network.precision import autocast


@pytest.mark.parametrize("amp, on", [(None, False), (False, False), (True, True)])
def test_autocast_on_the_cpu_only_when_asked(amp, on):
    with autocast(torch.device("cpu"), amp):
        assert torch.is_autocast_enabled("cpu") is on
        if on:
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
