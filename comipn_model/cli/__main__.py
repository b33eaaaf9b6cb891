"""`torchrun --nproc_per_node N -m comipn_model.cli ...`: DDP training."""

from comipn_model.cli import main

main()
