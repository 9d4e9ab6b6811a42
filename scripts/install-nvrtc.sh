#!/usr/bin/env bash
# Installs NVRTC (the CUDA runtime compiler) from PyPI into .ci-deps/nvrtc, without a GPU, a
# driver or a CUDA toolkit, so that CI can compile every kernel to CUBIN
# (tests/kernels_compile.rs). Prints the folder holding libnvrtc.so.13 on its last line: put it
# on LD_LIBRARY_PATH and in GPUVET_CUDA_LIB_DIR.
#
# The version is pinned: NVRTC's major version must not be newer than the driver's CUDA (13.0 on
# the reference H200, driver 580), and a pinned minor keeps the CUBIN cache keys stable.
set -euo pipefail

NVRTC_VERSION="${GPUVET_NVRTC_VERSION:-13.0.88}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.ci-deps/nvrtc}"
PY="${PYTHON:-python3}"

libdir() {
    # 13.x wheels put the libraries under nvidia/cu13/lib, 12.x ones under nvidia/cuda_nvrtc/lib.
    for d in "$DEST/nvidia/cu13/lib" "$DEST/nvidia/cuda_nvrtc/lib"; do
        if ls "$d"/libnvrtc.so.* >/dev/null 2>&1; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

if [ -f "$DEST/.installed-$NVRTC_VERSION" ] && lib="$(libdir)"; then
    echo "nvrtc $NVRTC_VERSION already installed in $DEST" >&2
else
    mkdir -p "$DEST"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
        --target "$DEST" "nvidia-cuda-nvrtc==$NVRTC_VERSION" >&2
    touch "$DEST/.installed-$NVRTC_VERSION"
    lib="$(libdir)" || { echo "install-nvrtc: libnvrtc.so not found under $DEST" >&2; exit 1; }
fi
echo "$lib"
