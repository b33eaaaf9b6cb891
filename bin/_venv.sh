# Sourced by bin/test and bin/demo: make .venv if absent, install the project into it, set the
# offline environment. Installs again only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COMIPN_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
# The torch build to install first (override for another platform, e.g. COMIPN_TORCH="torch torchvision").
TORCH_SPEC="${COMIPN_TORCH:-torch==2.14.1 torchvision==0.29.1}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "comipn: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.comipn-install-stamp"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1) $TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "comipn: installing torch and the project into $VENV (first time: a few minutes)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install -q $TORCH_SPEC >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" >&2
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
# Our machines reach no model hub: never let a library wait on the network.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}" YOLO_OFFLINE="${YOLO_OFFLINE:-1}"
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$VENV/.yolo-config}"
mkdir -p "$YOLO_CONFIG_DIR"
