#!/usr/bin/env bash
# Installs cuobjdump and nvdisasm from PyPI into .ci-deps/cuda-tools, without a GPU or a CUDA
# toolkit, so that CI can read the SASS of every kernel (tests/kernels_compile.rs: tensor-core
# instructions present, no local memory). Prints the folder holding both binaries on its last
# line: set GPUVET_CUOBJDUMP=<dir>/cuobjdump and put <dir> on PATH (cuobjdump runs nvdisasm).
#
# Pinned like NVRTC (scripts/install-nvrtc.sh). PyPI has no 13.0.x wheels of these two tools;
# 13.2.51 is the oldest 13.x there. A disassembler reads CUBINs of older toolchains of the same
# major version, so it disassembles what NVRTC 13.0 compiles.
set -euo pipefail

TOOLS_VERSION="${GPUVET_CUDA_TOOLS_VERSION:-13.2.51}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.ci-deps/cuda-tools}"
PY="${PYTHON:-python3}"
BIN="$DEST/nvidia/cu13/bin"

if [ -f "$DEST/.installed-$TOOLS_VERSION" ] && [ -x "$BIN/cuobjdump" ] && [ -x "$BIN/nvdisasm" ]; then
    echo "cuobjdump and nvdisasm $TOOLS_VERSION already installed in $DEST" >&2
else
    mkdir -p "$DEST"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target "$DEST" \
        "nvidia-cuda-cuobjdump==$TOOLS_VERSION" "nvidia-cuda-nvdisasm==$TOOLS_VERSION" >&2
    [ -x "$BIN/cuobjdump" ] && [ -x "$BIN/nvdisasm" ] \
        || { echo "install-cuda-tools: cuobjdump/nvdisasm not found under $BIN" >&2; exit 1; }
    touch "$DEST/.installed-$TOOLS_VERSION"
fi
"$BIN/cuobjdump" --version >&2
echo "$BIN"
