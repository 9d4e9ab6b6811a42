#!/usr/bin/env bash
# One-call check of gpuvet's CUDA backend on a GPU machine, with PyTorch measuring the same
# operations in the same run.
#
#   scripts/gpu-check.sh --build     on a CPU box with Rust: builds the release gpuvet and the
#                                    GPU test binaries into target/gpu-check/ (stripped, small
#                                    enough to carry to a machine without Rust)
#   scripts/gpu-check.sh             on the GPU machine: runs everything, writes logs and JSON
#                                    under $OUT (default ./gpu-check-out), prints a side-by-side
#                                    table of gpuvet and PyTorch last
#
# The GPU machine needs the NVIDIA driver, CUDA 13 libraries (/usr/local/cuda or pip wheels:
# gpuvet finds them itself), python3 with PyTorch. No network, no Rust.
# Environment: OUT (output folder), GPUVET_CHECK_QUICK=0 to skip the quick suite,
# GPUVET_CHECK_SIZE (matmul size, default 8192), GPUVET_CHECK_COPY (copy size, default 4GiB).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/gpu-check"

if [ "${1:-}" = "--build" ]; then
    set -e
    cd "$ROOT"
    cargo build --release --bin gpuvet
    mkdir -p "$BIN"
    cp target/release/gpuvet "$BIN/gpuvet"
    for t in cuda_gpu kernels_compile; do
        exe="$(cargo test --release --no-run --test "$t" --message-format=json 2>/dev/null \
            | python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("executable") and m.get("target", {}).get("kind") == ["test"]: print(m["executable"])' | tail -n 1)"
        [ -n "$exe" ] || { echo "gpu-check: no test binary for $t" >&2; exit 1; }
        cp "$exe" "$BIN/$t"
    done
    # Debug info makes the binaries too large to carry; symbols stay for backtraces.
    for f in "$BIN"/*; do strip --strip-debug "$f" 2>/dev/null || true; done
    du -sh "$BIN"/*
    echo "carry: target/gpu-check (and run scripts/gpu-check.sh on the GPU machine)"
    exit 0
fi

OUT="${OUT:-$ROOT/gpu-check-out}"
SIZE="${GPUVET_CHECK_SIZE:-8192}"
COPY="${GPUVET_CHECK_COPY:-4GiB}"
mkdir -p "$OUT"
[ -x "$BIN/gpuvet" ] || { echo "gpu-check: $BIN/gpuvet missing; run scripts/gpu-check.sh --build first" >&2; exit 2; }
GPUVET=("$BIN/gpuvet" --backend cuda)
# Kernel cache inside $OUT: the run measures compilation from cold, as a first run would.
export GPUVET_KERNEL_CACHE="$OUT/kernel-cache"
declare -a SUMMARY=()

step() {
    # step NAME LOGFILE CMD...: runs one step, keeps going on failure, records the status.
    local name="$1" log="$2"
    shift 2
    echo
    echo "=== $name"
    local t0=$SECONDS
    "$@" 2>&1 | tee "$OUT/$log"
    local rc=${PIPESTATUS[0]}
    SUMMARY+=("$(printf '%-34s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
    return 0
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -a)"
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "gpuvet: $("$BIN/gpuvet" --version 2>&1)"
    echo "driver: $(nvidia-smi --query-gpu=driver_version,name --format=csv,noheader 2>&1 | head -n 1)"
} | tee "$OUT/meta.txt"
nvidia-smi -q > "$OUT/nvidia-smi-q.log" 2>&1
step "nvidia-smi" nvidia-smi.log nvidia-smi
step "gpuvet info" info.log "${GPUVET[@]}" --json "$OUT/info.json" info
step "kernels: list -v" kernels.log "${GPUVET[@]}" list --kernels -v
step "test: kernels compile (NVRTC)" test-kernels.log env GPUVET_REQUIRE_NVRTC=1 "$BIN/kernels_compile" --nocapture
step "test: cuda_gpu" test-cuda-gpu.log env GPUVET_REQUIRE_GPU=1 "$BIN/cuda_gpu" --test-threads=1 --nocapture
if [ "${GPUVET_CHECK_QUICK:-1}" != "0" ]; then
    step "quick suite" quick.log "${GPUVET[@]}" --json "$OUT/quick.json"
fi
step "bench matmul ${SIZE}^3 (kn)" matmul.log "${GPUVET[@]}" --json "$OUT/matmul.json" \
    bench matmul --shape "${SIZE}x${SIZE}x${SIZE}" --dtype bf16,f16,tf32,f32,fp8_e4m3,int8
# gpuvet's own matmul kernels (simt fp32, mma bf16/f16/tf32/int8/fp8) beside cuBLASLt on the same inputs:
# the figures docs/perf/matmul.md predicts and has not measured yet.
step "bench matmul own ${SIZE}^3 (nk)" matmul-own.log "${GPUVET[@]}" --json "$OUT/matmul-own.json" \
    bench matmul --impl all --shape "${SIZE}x${SIZE}x${SIZE}" --dtype f32,tf32,bf16,f16,int8,fp8_e4m3 --layout nk
step "bench matmul own 4096^3 (kn,nk)" matmul-own-4096.log "${GPUVET[@]}" --json "$OUT/matmul-own-4096.json" \
    bench matmul --impl all --shape 4096x4096x4096 --dtype bf16 --layout kn,nk
step "bench matmul own decode (nk)" matmul-own-decode.log "${GPUVET[@]}" --json "$OUT/matmul-own-decode.json" \
    bench matmul --impl all --shape 1x8192x8192,16x8192x8192,64x8192x8192,16x28672x4096 --dtype bf16 --layout nk
step "bench memory $COPY" memory.log "${GPUVET[@]}" --json "$OUT/memory.json" \
    bench memory --size "$COPY" --op copy,read,write,triad
step "bench attention (unfused)" attention.log "${GPUVET[@]}" --json "$OUT/attention.json" \
    bench attention --batch 1 --heads 32 --kv-heads 8 --seq 4096 --head-dim 128 --causal --dtype bf16
# Own attention kernels (flash, flash-decode) beside the unfused reference on the same inputs,
# each verified; scripts/torch_reference.py times PyTorch SDPA (flash and cuDNN backends) on the
# same three shapes. Prefill: 16k tokens, Llama-3-8B heads; decode: KV cache of 1 GiB (≫ L2).
step "bench attention prefill (all impls)" attention-prefill.log "${GPUVET[@]}" --json "$OUT/attention-prefill.json" \
    bench attention --batch 4 --heads 32 --kv-heads 8 --seq 4096 --head-dim 128 --dtype bf16 --impl all
step "bench attention prefill causal (all)" attention-prefill-causal.log "${GPUVET[@]}" --json "$OUT/attention-prefill-causal.json" \
    bench attention --batch 4 --heads 32 --kv-heads 8 --seq 4096 --head-dim 128 --causal --dtype bf16 --impl all
step "bench attention decode (all impls)" attention-decode.log "${GPUVET[@]}" --json "$OUT/attention-decode.json" \
    bench attention --batch 8 --heads 32 --kv-heads 8 --seq 1 --kv-seq 32768 --head-dim 128 --causal --dtype bf16 --impl all
step "PyTorch reference" torch.log python3 "$ROOT/scripts/torch_reference.py" measure \
    --out "$OUT/torch.json" --size "$SIZE" --copy-bytes "$(python3 -c "
s='$COPY'.strip()
u={'KiB':1<<10,'MiB':1<<20,'GiB':1<<30,'TiB':1<<40}
print(next((int(float(s[:-len(k)])*v) for k,v in u.items() if s.endswith(k)), None) or int(s))")"

echo
echo "=== steps"
printf '%s\n' "${SUMMARY[@]}"
echo
echo "=== gpuvet vs PyTorch (same run)"
if [ -f "$OUT/torch.json" ]; then
    python3 "$ROOT/scripts/torch_reference.py" compare --torch "$OUT/torch.json" \
        "$OUT/matmul.json" "$OUT/memory.json" "$OUT/attention-prefill.json" \
        "$OUT/attention-prefill-causal.json" "$OUT/attention-decode.json" | tee "$OUT/side-by-side.txt"
else
    echo "no PyTorch figures (see $OUT/torch.log)"
fi
