# Sourced by bin/run_twitter15.sh and bin/run_twitter17.sh with DATASET set: the paper recipe
# (BERT-base, CLIP ViT-B/32, batch 8, 30 epochs, lr 3e-5, warmup 1%, seed 1234) on a GPU.
#   bin/run_twitterNN.sh DATA_ROOT [RUN_DIR] [extra comipn-train options...]
# DATA_ROOT holds <dataset>/, <dataset>_images/ and <dataset>_aux_images/ (the field's layout).
# Offline: add --text-model /path/to/bert-base-uncased --clip-model ViT-B-32-quickgelu
#   --clip-pretrained /path/to/vit-b-32-openai.bin (OpenAI's weights need the -quickgelu model).
# Several GPUs: NPROC=4 bin/run_twitterNN.sh DATA_ROOT (runs under torchrun with DDP).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 DATA_ROOT [RUN_DIR] [extra comipn-train options...]" >&2
    sed -n '2,7p' "$(dirname "${BASH_SOURCE[0]}")/_run_paper.sh" >&2
    exit 2
fi
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_ROOT="$1"; shift
RUN_DIR="runs/$DATASET-paper"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then RUN_DIR="$1"; shift; fi
PY="${PYTHON:-$ROOT_DIR/.venv/bin/python}"
launcher=("$PY" -m comipn_model.cli)
if [ "${NPROC:-1}" -gt 1 ]; then
    launcher=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m comipn_model.cli)
fi
exec "${launcher[@]}" --data-root "$DATA_ROOT" --dataset "$DATASET" --preset paper \
    --run-dir "$RUN_DIR" --device "${DEVICE:-cuda}" "$@"
