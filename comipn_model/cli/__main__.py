"""``comipn-train`` as a module (``python -m comipn_model.cli``), so that
``torchrun --nproc_per_node N -m comipn_model.cli ...`` can start DDP training."""

from comipn_model.cli import main

main()
