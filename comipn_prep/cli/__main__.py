"""``comipn-prep`` as a module (``python -m comipn_prep.cli``), so that
``torchrun --nproc_per_node N -m comipn_prep.cli ground ...`` can start one grounding process per GPU."""

from comipn_prep.cli import main

main()
