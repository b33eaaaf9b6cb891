#!/usr/bin/env bash
# Co-MIPN on Twitter-2015 with the paper's recipe on a GPU (see bin/_run_paper.sh). Usage:
#   bin/run_twitter15.sh DATA_ROOT [RUN_DIR] [extra comipn-train options...]
DATASET=twitter2015
source "$(dirname "$0")/_run_paper.sh"
