#!/usr/bin/env bash
# One bounded call that checks gpuvet's CUDA backend on a GPU machine, with PyTorch measuring the
# same operations in the same run, and hands back everything in three files.
#
#   scripts/gpu-check.sh --build [PROFILE]   here (Rust, network): builds stripped release binaries
#                                            into target/gpu-check/ and checks they need nothing but
#                                            glibc and the driver at run time (ldd) and their size;
#                                            PROFILE `checked` (CI) builds them as the tests are
#                                            built (overflow checks on), so `cargo test --profile
#                                            checked` reuses every dependency; a GPU run carries
#                                            the default, `release`
#   scripts/gpu-check.sh [OPTIONS]           on the GPU machine (no Rust, no network)
#
# Options:
#   --backend cuda|cpu   cuda (default) on the GPU machine; cpu runs every step on the CPU backend
#                        with small shapes and no PyTorch, so CI tests the script end to end
#   --budget S           seconds for the whole run (default 420); each step gets its own timeout,
#                        never more than what is left, and a step that cannot start in time is
#                        recorded as skipped
#   --steps LIST         only the steps whose names match one of these comma-separated shell
#                        patterns (e.g. `gemm-*,copy`): a rerun of what failed; `--list` names them
#   --out DIR            where the three results go (default $OUT, else ./gpu-check-out)
#   --bin DIR            the binaries (default target/gpu-check)
#   --list               print the steps in order, with their time limits, predicted seconds and
#                        where the budget is predicted to run out, and exit
#
# Steps run in order of importance (the budget plan in docs/gpu-check.md): A inventory, one verified
# cuBLASLt bf16 GEMM, copy bandwidth and PyTorch's same figures (within ~90 s); B the Hopper goals of
# issue 15 (wgmma, flash-sm90, decode, each verified beside cuBLASLt/PyTorch); C the GPU tests, the
# Hopper ones first; D the full vendor and own kernel sweeps; E the long runs (quick suite, validate,
# stress). At the default budget A-C are predicted to fit and D-E are left to a second call. A step
# that fails or times out is recorded and the run goes on; one that cannot get its least useful
# time is recorded as skipped. Exactly three files are written to the output folder:
#   gpu-check.tar.gz   every log and JSON of the run
#   summary.txt        the steps with status and seconds, then gpuvet beside PyTorch
#   record.json        the machine-readable record (docs/perf/records/README.md)
# Scratch files and the kernel cache live in a temporary folder outside it.
# Exit status: 0 every step passed or was skipped, 1 a step failed or timed out, 2 usage error.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BACKEND=cuda
BUDGET=420
STEPS=""
OUT_DIR="${OUT:-$ROOT/gpu-check-out}"
BIN="$ROOT/target/gpu-check"
LIST_ONLY=0
ARGV=("$@")

die() { echo "gpu-check: $*" >&2; exit 2; }

# ---------------------------------------------------------------- build (the CPU box with Rust)
# Only these may appear in `ldd` of a carried binary: glibc's pieces and the loader. The driver's
# libraries (libcuda, libnvidia-ml) and CUDA's (NVRTC, cuBLASLt) are opened at run time.
LDD_ALLOWED='linux-vdso|libc\.so|libm\.so|libgcc_s\.so|libdl\.so|libpthread\.so|librt\.so|ld-linux'
CARRY_LIMIT_MB=48

build() {
    local profile="$1"
    case "$profile" in
        release|checked) ;;
        *) die "--build takes release (the default) or checked, not \`$profile\`" ;;
    esac
    set -e
    cd "$ROOT"
    mkdir -p "$BIN"
    local exes
    # cargo's JSON names each executable wherever CARGO_TARGET_DIR puts it. One invocation: the
    # integration tests need the gpuvet binary, so cargo builds it here too, with one feature
    # set (a separate `cargo build` would compile every dependency a second time).
    exes="$(cargo test --profile "$profile" --no-run --test cuda_gpu --test backends --test user_kernels_gpu \
        --message-format=json \
        | python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("executable"): print(m["target"]["name"], m["executable"])')"
    for name in gpuvet cuda_gpu backends user_kernels_gpu; do
        local exe
        exe="$(awk -v n="$name" '$1 == n {print $2}' <<<"$exes" | tail -n 1)"
        [ -n "$exe" ] || die "cargo built no executable for $name"
        cp "$exe" "$BIN/$name"
        # Debug info makes the binaries too large to carry; symbols stay for backtraces.
        strip --strip-debug "$BIN/$name"
    done
    set +e
    local bad=0
    for f in "$BIN"/*; do
        local extra
        extra="$(ldd "$f" 2>&1 | grep -Ev "$LDD_ALLOWED" || true)"
        if [ -n "$extra" ]; then
            echo "gpu-check: $f needs libraries the GPU machine may lack:" >&2
            echo "$extra" >&2
            bad=1
        fi
    done
    du -sh "$BIN"/*
    local total_mb
    total_mb=$(( $(du -sk "$BIN" | cut -f1) / 1024 ))
    echo "carried binaries: ${total_mb} MiB (limit ${CARRY_LIMIT_MB} MiB of the 64 MiB a run may carry)"
    [ "$total_mb" -le "$CARRY_LIMIT_MB" ] || { echo "gpu-check: binaries too large to carry" >&2; bad=1; }
    [ "$bad" = 0 ] || exit 1
    echo "ldd: only glibc and the loader; carry target/gpu-check and run scripts/gpu-check.sh there"
    exit 0
}

while [ $# -gt 0 ]; do
    case "$1" in
        --build) case "${2:-}" in -*|"") build release ;; *) build "$2" ;; esac ;;
        --backend) BACKEND="${2:-}"; shift ;;
        --budget) BUDGET="${2:-}"; shift ;;
        --steps) STEPS="${2:-}"; shift ;;
        --out) OUT_DIR="${2:-}"; shift ;;
        --bin) BIN="${2:-}"; shift ;;
        --list) LIST_ONLY=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument \`$1\` (see --help)" ;;
    esac
    shift
done
case "$BACKEND" in cuda|cpu) ;; *) die "--backend takes cuda or cpu, not \`$BACKEND\`" ;; esac
[[ "$BUDGET" =~ ^[0-9]+$ ]] && [ "$BUDGET" -ge 30 ] || die "--budget takes whole seconds, at least 30"

# ---------------------------------------------------------------- sizes per backend
if [ "$BACKEND" = cuda ]; then
    SIZE=8192; COPY=4GiB; XFER=1GiB; MAXT=2; STRESS=60s; VALIDATE_EXTRA=()
    XFER_CURVE=4KiB,1MiB,64MiB,1GiB
    PREFILL=(--batch 4 --heads 32 --kv-heads 8 --seq 4096 --head-dim 128)
    DECODE=(--batch 8 --heads 32 --kv-heads 8 --seq 1 --kv-seq 32768 --head-dim 128)
    PREFILL_IMPLS=unfused,flash
    DECODE_GEMM=1x8192x8192,16x8192x8192,64x8192x8192,16x28672x4096
    ALL_DTYPES=bf16,f16,fp8_e4m3,int8,tf32,f32
    WG_DTYPES=bf16,fp8_e4m3; WG_IMPLS=cublaslt,wgmma
    # The copy step's vendor reference (the copy engine's memcpy).
    COPY_IMPL=reference
else
    SIZE=256; COPY=32MiB; XFER=16MiB; MAXT=0.3; STRESS=3s; VALIDATE_EXTRA=(--allow-cpu)
    # The CPU has no vendor copy (`--impl reference` is refused there): its own stream kernel.
    COPY_IMPL=default
    XFER_CURVE=4KiB,1MiB
    PREFILL=(--batch 1 --heads 4 --kv-heads 2 --seq 128 --head-dim 64)
    DECODE=(--batch 2 --heads 4 --kv-heads 2 --seq 1 --kv-seq 1024 --head-dim 64)
    PREFILL_IMPLS=all
    DECODE_GEMM=1x512x512,16x512x512
    ALL_DTYPES=bf16,f16,int8,f32
    WG_DTYPES=bf16; WG_IMPLS=all
fi
SHAPE="${SIZE}x${SIZE}x${SIZE}"
HALF_SHAPE="$((SIZE / 2))x$((SIZE / 2))x$((SIZE / 2))"
bytes_of() {
    python3 -c "
s='$1'; u={'KiB':1<<10,'MiB':1<<20,'GiB':1<<30}
print(next((int(float(s[:-3]))*v for k,v in u.items() if s.endswith(k)), None) or int(s))"
}
COPY_BYTES="$(bytes_of "$COPY")"
XFER_BYTES="$(bytes_of "$XFER")"

# ---------------------------------------------------------------- the step machinery
SCRATCH=""
START=$SECONDS
DEADLINE=$((START + BUDGET))
FAILED=0
G=()   # the gpuvet command line, set once the binary is known

# selected NAME: true when --steps is empty or NAME matches one of its patterns.
selected() {
    [ -z "$STEPS" ] && return 0
    local p
    IFS=',' read -ra pats <<<"$STEPS"
    for p in "${pats[@]}"; do
        # shellcheck disable=SC2053  # the pattern is meant to glob
        [[ "$1" == $p ]] && return 0
    done
    return 1
}

# ---------------------------------------------------------------- the budget plan
# Per step (docs/gpu-check.md): predicted seconds on an H200, low and high (PREDICTIONS from the
# step's work, not measurements: no GPU has run this yet), and the least time it is started with
# (less than that left of the budget: `skipped: budget`; a step started with less than its limit
# is cut short at the budget, and gpuvet's SIGINT handler writes what it measured so far).
declare -A PRED_LO=() PRED_HI=() MIN_S=()
# Per tier, in run order: step:low:high:min (seconds).
PLAN_A="inventory:2:2:5 nvidia-smi:1:1:5 gemm-bf16-ref:6:10:10 copy:12:15:10 transfer:8:12:10
    torch-first:18:25:15"
PLAN_B="gemm-wgmma:40:50:20 torch-half:12:15:10 attention-sm90:10:15:10 attention-sm90-causal:10:15:10
    torch-attention:20:30:15 gemm-own-decode:25:35:15 attention-decode:20:30:15"
PLAN_C="gpu-tests-hopper:40:70:30 gpu-tests:60:100:45 gpu-tests-shared:20:40:20
    user-kernel-tests:30:60:30"
PLAN_D="gemm-ref:30:35:20 torch-all:50:70:30 memory-all:25:30:15 transfer-curve:25:40:15 gemm-own:60:80:30
    gemm-own-layouts:12:15:10 attention-prefill:20:30:15 attention-prefill-causal:20:30:15
    user-kernel-free-form:10:20:10 user-kernel-expected:5:10:5 user-kernel-gemm:20:40:15
    user-kernel-attention:10:20:10 user-kernel-copy:10:20:10"
PLAN_E="quick-suite:40:60:40 validate:60:90:60 stress:65:65:65"
for entry in $PLAN_A $PLAN_B $PLAN_C $PLAN_D $PLAN_E; do
    IFS=: read -r name lo hi least <<<"$entry"
    PRED_LO[$name]=$lo; PRED_HI[$name]=$hi; MIN_S[$name]=$least
done
# On the CPU backend every step is small: any step starts with 10 s left.
least_time() { if [ "$BACKEND" = cuda ]; then echo "${MIN_S[$1]:-10}"; else echo 10; fi; }
LIST_LO=0
LIST_HI=0

record_step() { # NAME STATUS SECONDS LIMIT
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$SCRATCH/steps.tsv"
    printf '%-26s %-22s %4ss (limit %ss)\n' "$1" "$2" "$3" "$4"
}

skip() { # NAME REASON
    selected "$1" || return 0
    # Listed with its prediction all the same: the plan is the GPU machine's, not this one's.
    [ "$LIST_ONLY" = 1 ] && { list_step "$1" - "(skipped here: $2)"; return 0; }
    record_step "$1" "skipped: $2" 0 0
}

# step NAME LIMIT CMD...: runs CMD under `timeout` (SIGINT first, so gpuvet writes what it has,
# then SIGKILL 10 s later) with its output in logs/NAME.log; never stops the run.
step() {
    local name="$1" limit="$2"
    shift 2
    selected "$name" || return 0
    if [ "$LIST_ONLY" = 1 ]; then
        list_step "$name" "$limit" "$*"
        return 0
    fi
    local left=$((DEADLINE - SECONDS)) least
    least="$(least_time "$name")"
    if [ "$left" -lt "$least" ]; then
        record_step "$name" "skipped: budget" 0 "$limit"
        return 0
    fi
    [ "$limit" -le "$left" ] || limit=$left
    local t0=$SECONDS rc status
    echo "[$(date -u +%H:%M:%S)] $name: $*" >"$SCRATCH/logs/$name.log"
    timeout -k 10 -s INT "$limit" "$@" >>"$SCRATCH/logs/$name.log" 2>&1
    rc=$?
    case "$rc" in
        0) status=ok ;;
        124|137) status=timeout; FAILED=1 ;;
        *) status="failed (rc=$rc)"; FAILED=1 ;;
    esac
    record_step "$name" "$status" "$((SECONDS - t0))" "$limit"
    if [ "$rc" != 0 ]; then
        tail -n 5 "$SCRATCH/logs/$name.log" | sed 's/^/    | /'
    fi
    return 0
}

# --list: limit, predicted seconds, and the predicted running total against the budget.
list_step() { # NAME LIMIT COMMAND
    local lo="${PRED_LO[$1]:-0}" hi="${PRED_HI[$1]:-0}" mark=""
    LIST_LO=$((LIST_LO + lo))
    LIST_HI=$((LIST_HI + hi))
    if [ -z "${PRED_LO[$1]:-}" ]; then
        mark="  [no prediction in the plan]"
    elif [ "$LIST_LO" -gt "$BUDGET" ]; then
        mark="  [predicted past the budget: skipped]"
    elif [ "$LIST_HI" -gt "$BUDGET" ]; then
        mark="  [may be cut or skipped at the budget]"
    fi
    local limit="${2}s"
    [ "$2" != - ] || limit=-
    printf '%-26s %5s  predicted %3s-%3ss, total %4s-%4ss%s\n    %s\n' \
        "$1" "$limit" "$lo" "$hi" "$LIST_LO" "$LIST_HI" "$mark" "$3"
}

J() { echo "$SCRATCH/json/$1.json"; }

# ---------------------------------------------------------------- the steps, most important first
torch_or_reason() {
    # Prints why PyTorch cannot give figures here, or nothing when it can.
    if [ "$BACKEND" = cpu ]; then
        python3 -c 'import torch' 2>/dev/null && echo "cpu backend" || echo "no torch"
    elif ! python3 -c 'import torch' 2>/dev/null; then
        echo "no torch"
    fi
}

steps() {
    local torch_why
    torch_why="$(torch_or_reason)"
    # A. The evidence that matters most, within the first ~90 s (issue 12).
    step inventory 30 "${G[@]}" --json "$(J info)" info
    if [ "$BACKEND" = cuda ] && command -v nvidia-smi >/dev/null; then
        step nvidia-smi 20 nvidia-smi -q
    else
        skip nvidia-smi "no nvidia-smi"
    fi
    # A second of warm-up: NVML's power reading averages the last second, so this result (one,
    # a second more) also records board power and TFLOP/s per watt.
    step gemm-bf16-ref 40 "${G[@]}" --max-time "$MAXT" --warmup 1 --json "$(J gemm-bf16-ref)" \
        bench matmul --shape "$SHAPE" --dtype bf16 --impl reference
    # Vendor references only in the first steps: a fault in a never-run own kernel is sticky and
    # would take the reference figures of the same process down with it.
    step copy 30 "${G[@]}" --max-time "$MAXT" --json "$(J copy)" \
        bench memory --size "$COPY" --op copy --impl "$COPY_IMPL"
    # Host<->device from pinned memory on the copy engine: PyTorch measures the same below.
    step transfer 30 "${G[@]}" --max-time "$MAXT" --json "$(J transfer)" \
        bench transfer --size "$XFER" --direction h2d,d2h --memory pinned --impl reference
    if [ -z "$torch_why" ]; then
        step torch-first 60 python3 "$ROOT/scripts/torch_reference.py" measure --out "$(J torch-first)" \
            --size "$SIZE" --copy-bytes "$COPY_BYTES" --transfer-bytes "$XFER_BYTES" --only bf16,copy,transfer
    else
        skip torch-first "$torch_why"
    fi
    # B. Issue 15's goals, each figure verified and measured beside its reference in the same
    # run: wgmma beside cuBLASLt at the full and half size (on other GPUs the step says wgmma
    # is not available) with PyTorch at the half size (the full size is in torch-first);
    # flash-sm90 alone in its own processes (a fault there is sticky and would take other
    # figures with it) with PyTorch SDPA on the same shapes; the decode GEMMs and flash-decode,
    # whose yardstick is the copy bandwidth measured in A. Limits ~1.5x the high prediction:
    # a never-run kernel that hangs costs no more than that.
    step gemm-wgmma 75 "${G[@]}" --max-time "$MAXT" --json "$(J gemm-wgmma)" \
        bench matmul --shape "$SHAPE,$HALF_SHAPE" --dtype "$WG_DTYPES" --layout nk --impl "$WG_IMPLS"
    if [ -z "$torch_why" ]; then
        step torch-half 40 python3 "$ROOT/scripts/torch_reference.py" measure --out "$(J torch-half)" \
            --size "$((SIZE / 2))" --only bf16,fp8_e4m3 --no-attention
    else
        skip torch-half "$torch_why"
    fi
    if [ "$BACKEND" = cuda ]; then
        step attention-sm90 30 "${G[@]}" --max-time "$MAXT" --json "$(J attention-sm90)" \
            bench attention "${PREFILL[@]}" --dtype bf16 --impl flash-sm90
        step attention-sm90-causal 30 "${G[@]}" --max-time "$MAXT" --json "$(J attention-sm90-causal)" \
            bench attention "${PREFILL[@]}" --causal --dtype bf16 --impl flash-sm90
    else
        skip attention-sm90 "cpu backend"
        skip attention-sm90-causal "cpu backend"
    fi
    if [ -z "$torch_why" ]; then
        step torch-attention 45 python3 "$ROOT/scripts/torch_reference.py" measure \
            --out "$(J torch-attention)" --only attention
    else
        skip torch-attention "$torch_why"
    fi
    step gemm-own-decode 50 "${G[@]}" --max-time "$MAXT" --json "$(J gemm-own-decode)" \
        bench matmul --shape "$DECODE_GEMM" --dtype bf16 --layout nk --impl all
    step attention-decode 45 "${G[@]}" --max-time "$MAXT" --json "$(J attention-decode)" \
        bench attention "${DECODE[@]}" --causal --dtype bf16 --impl all
    # C. The GPU tests: every workload verified on odd shapes (skip visibly without a GPU), the
    # Hopper kernels' tests first, then the rest, then the shared bodies of tests/backends.rs.
    local req=(GPUVET_REQUIRE_GPU=0)
    [ "$BACKEND" = cuda ] && req=(GPUVET_REQUIRE_GPU=1)
    local hopper_tests=(wgmma_verified_on_hopper_and_refused_elsewhere
        attention_flash_sm90_verified_or_refused mma_split_k_decode_verified)
    if [ -x "$BIN/cuda_gpu" ]; then
        step gpu-tests-hopper 105 env "${req[@]}" "$BIN/cuda_gpu" --test-threads=1 --exact \
            "${hopper_tests[@]}"
        step gpu-tests 150 env "${req[@]}" "$BIN/cuda_gpu" --test-threads=1 \
            "${hopper_tests[@]/#/--skip=}"
    else
        skip gpu-tests-hopper "no $BIN/cuda_gpu (run --build)"
        skip gpu-tests "no $BIN/cuda_gpu (run --build)"
    fi
    if [ -x "$BIN/backends" ]; then
        step gpu-tests-shared 60 env "${req[@]}" "$BIN/backends" cuda:: --test-threads=1
    else
        skip gpu-tests-shared "no $BIN/backends (run --build)"
    fi
    # Users' kernels (examples/kernels): each example verified, the planted wrong GEMM FAILED,
    # the faulting kernel a failed result with its CUDA error (in a child process).
    if [ -x "$BIN/user_kernels_gpu" ]; then
        step user-kernel-tests 120 env "${req[@]}" GPUVET_EXAMPLES="$ROOT/examples/kernels" \
            "$BIN/user_kernels_gpu" --test-threads=1
    else
        skip user-kernel-tests "no $BIN/user_kernels_gpu (run --build)"
    fi
    # D. Every dtype on the vendor library, PyTorch's full set, then the own kernels.
    step gemm-ref 60 "${G[@]}" --max-time "$MAXT" --json "$(J gemm-ref)" \
        bench matmul --shape "$SHAPE" --dtype "$ALL_DTYPES" --impl reference
    if [ -z "$torch_why" ]; then
        step torch-all 120 python3 "$ROOT/scripts/torch_reference.py" measure --out "$(J torch-all)" \
            --size "$SIZE" --copy-bytes "$COPY_BYTES" --transfer-bytes "$XFER_BYTES" --no-attention
    else
        skip torch-all "$torch_why"
    fi
    step memory-all 40 "${G[@]}" --max-time "$MAXT" --json "$(J memory-all)" \
        bench memory --size "$COPY" --op copy,read,write,triad --impl all
    # The transfer curve: latency-bound to bandwidth-bound, both ways, pinned and pageable, the
    # copy engine and the SM kernel.
    step transfer-curve 60 "${G[@]}" --max-time 0.3 --json "$(J transfer-curve)" \
        bench transfer --size "$XFER_CURVE" --direction h2d,d2h,bidir --memory pinned,pageable --impl all
    step gemm-own 90 "${G[@]}" --max-time "$MAXT" --json "$(J gemm-own)" \
        bench matmul --shape "$SHAPE" --dtype "$ALL_DTYPES" --layout nk --impl all
    step gemm-own-layouts 40 "${G[@]}" --max-time "$MAXT" --json "$(J gemm-own-layouts)" \
        bench matmul --shape "$HALF_SHAPE" --dtype bf16 --layout kn,nk --impl all
    step attention-prefill 60 "${G[@]}" --max-time "$MAXT" --json "$(J attention-prefill)" \
        bench attention "${PREFILL[@]}" --dtype bf16 --impl "$PREFILL_IMPLS"
    step attention-prefill-causal 60 "${G[@]}" --max-time "$MAXT" --json "$(J attention-prefill-causal)" \
        bench attention "${PREFILL[@]}" --causal --dtype bf16 --impl "$PREFILL_IMPLS"
    # Users' kernels from the command line, as docs/kernels.md shows them (a GPU only: the CPU
    # backend refuses them, as tests/user_kernel_cli.rs checks).
    local ex="$ROOT/examples/kernels"
    if [ "$BACKEND" = cuda ]; then
        step user-kernel-free-form 60 "${G[@]}" --max-time "$MAXT" --json "$(J user-kernel-free-form)" \
            bench kernel --spec "$ex/vector_add.toml" --set BLOCK=128,256,512
        step user-kernel-expected 30 "${G[@]}" --max-time "$MAXT" --json "$(J user-kernel-expected)" \
            bench kernel --spec "$ex/saxpy.toml"
        step user-kernel-gemm 90 "${G[@]}" --max-time "$MAXT" --json "$(J user-kernel-gemm)" \
            bench matmul --shape "$HALF_SHAPE" --dtype bf16 --layout nk \
            --kernel "$ex/naive_gemm.toml" --set TILE=16,32
        step user-kernel-attention 60 "${G[@]}" --max-time "$MAXT" --json "$(J user-kernel-attention)" \
            bench attention --batch 1 --heads 8 --kv-heads 2 --seq 256 --head-dim 64 --causal \
            --dtype bf16 --kernel "$ex/naive_attention.toml"
        step user-kernel-copy 40 "${G[@]}" --max-time "$MAXT" --json "$(J user-kernel-copy)" \
            bench memory --size "$COPY" --op copy --kernel "$ex/copy.toml"
    else
        for s in user-kernel-free-form user-kernel-expected user-kernel-gemm user-kernel-attention \
            user-kernel-copy; do
            skip "$s" "user kernels need a GPU"
        done
    fi
    # E. The long runs: what a user runs first, the node verdict, sustained load.
    step quick-suite 90 "${G[@]}" --json "$(J quick-suite)" run
    step validate 150 "${G[@]}" --json "$(J validate)" validate "${VALIDATE_EXTRA[@]}" --verdict "$(J verdict)"
    step stress 90 "${G[@]}" stress --duration "$STRESS" --json "$(J stress)"
}

# ---------------------------------------------------------------- run
if [ "$LIST_ONLY" = 0 ]; then
    [ -x "$BIN/gpuvet" ] || die "$BIN/gpuvet missing; run scripts/gpu-check.sh --build first (here: Rust)"
    mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
    SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")" || die "no temporary folder"
    mkdir -p "$SCRATCH/logs" "$SCRATCH/json"
    : >"$SCRATCH/steps.tsv"
    # The kernel cache stays outside $OUT (which returns at most 8 files); a fresh one measures
    # compilation from cold, as a user's first run would.
    export GPUVET_KERNEL_CACHE="$SCRATCH/kernel-cache"
    # PyTorch's cuBLASLt and gpuvet's should be the same build: look in torch's library folder
    # first, and put it first on the loader path so cudarc's bare-name loads find the same copy.
    if [ "$BACKEND" = cuda ] && [ -z "${GPUVET_CUDA_LIB_DIR:-}" ]; then
        tlib="$(python3 -c 'import os, nvidia.cu13 as m; print(os.path.join(m.__path__[0], "lib"))' 2>/dev/null || true)"
        if [ -n "$tlib" ] && [ -d "$tlib" ]; then
            export GPUVET_CUDA_LIB_DIR="$tlib"
            export LD_LIBRARY_PATH="$tlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        fi
    elif [ -n "${GPUVET_CUDA_LIB_DIR:-}" ]; then
        # A folder chosen by hand goes first on the loader path too, for the same reason.
        export LD_LIBRARY_PATH="$GPUVET_CUDA_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    # The GPU VM's memory grows as it is used (MemAvailable starts far below what it will
    # give), so a host-memory shortfall is noted in the result instead of refusing the 4 GiB
    # memory steps; set GPUVET_HOST_MEMORY_CHECK=strict to refuse.
    export GPUVET_HOST_MEMORY_CHECK="${GPUVET_HOST_MEMORY_CHECK:-warn}"
    # A kernel that never ends (a deadlocked mbarrier pipeline in a kernel never run on a GPU
    # before) is called hung after 20 s, well inside every step's limit: the step's JSON then
    # names the kernel, instead of the step timing out with nothing written.
    export GPUVET_HANG_TIMEOUT="${GPUVET_HANG_TIMEOUT:-20}"
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "command: scripts/gpu-check.sh ${ARGV[*]:-}"
        echo "host: $(uname -a)"
        echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
        echo "gpuvet: $("$BIN/gpuvet" --version 2>&1)"
        echo "backend: $BACKEND, budget: ${BUDGET}s"
        echo "cuda libraries: ${GPUVET_CUDA_LIB_DIR:-found by gpuvet}"
        echo "host memory check: $GPUVET_HOST_MEMORY_CHECK, hang timeout: ${GPUVET_HANG_TIMEOUT}s"
        echo "memory:"; free -g 2>&1
        if command -v nvidia-smi >/dev/null; then
            echo "driver: $(nvidia-smi --query-gpu=driver_version,name --format=csv,noheader 2>&1 | head -n 1)"
        fi
    } >"$SCRATCH/meta.txt"
fi
G=("$BIN/gpuvet" --backend "$BACKEND" --quiet)
if [ "$LIST_ONLY" = 1 ]; then
    SCRATCH='$SCRATCH'
    echo "step                      limit  predicted on an H200 (predictions, not measurements), running total; budget ${BUDGET}s"
    steps
    echo "predicted total ${LIST_LO}-${LIST_HI}s against a budget of ${BUDGET}s (docs/gpu-check.md: the budget plan)"
    exit 0
fi

echo "gpu-check: backend $BACKEND, budget ${BUDGET}s, scratch $SCRATCH"
steps

# ---------------------------------------------------------------- results: three files
reports=()
for f in "$SCRATCH"/json/*.json; do
    case "$(basename "$f")" in torch-*|info.json|verdict.json|stress.json) ;; *) reports+=("$f") ;; esac
done
torch_json=""
for t in torch-all torch-first; do
    [ -s "$(J "$t")" ] && { torch_json="$(J "$t")"; break; }
done
# PyTorch at the half size (the wgmma goals at 4096³) and SDPA (the attention goals) join the
# same table.
for t in torch-half torch-attention; do
    [ -s "$(J "$t")" ] && torch_json="${torch_json:+$torch_json,}$(J "$t")"
done
side="$SCRATCH/side-by-side.txt"
python3 "$ROOT/scripts/torch_reference.py" compare ${torch_json:+--torch "$torch_json"} \
    "${reports[@]}" >"$side" 2>"$SCRATCH/logs/compare.log" || echo "(no table: see logs/compare.log)" >"$side"
python3 "$ROOT/scripts/torch_reference.py" record --out "$SCRATCH/record.json" \
    --steps "$SCRATCH/steps.tsv" --meta "$SCRATCH/meta.txt" --backend "$BACKEND" \
    ${torch_json:+--torch "$torch_json"} --info "$(J info)" "${reports[@]}" \
    2>>"$SCRATCH/logs/compare.log" || echo "gpu-check: record.json not written (logs/compare.log)" >&2

{
    echo "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)  backend $BACKEND  budget ${BUDGET}s  used $((SECONDS - START))s"
    echo
    echo "== steps"
    awk -F'\t' '{printf "%-26s %-22s %4ss (limit %ss)\n", $1, $2, $3, $4}' "$SCRATCH/steps.tsv"
    echo
    echo "== gpuvet beside PyTorch (same run)"
    cat "$side"
} >"$SCRATCH/summary.txt"

# Only the three results go to $OUT; older copies of them are replaced, nothing else is touched.
rm -f "$OUT_DIR/gpu-check.tar.gz" "$OUT_DIR/summary.txt" "$OUT_DIR/record.json"
tar -czf "$OUT_DIR/gpu-check.tar.gz" -C "$SCRATCH" --exclude=kernel-cache . \
    || echo "gpu-check: the archive could not be written" >&2
cp "$SCRATCH/summary.txt" "$OUT_DIR/summary.txt"
[ -f "$SCRATCH/record.json" ] && cp "$SCRATCH/record.json" "$OUT_DIR/record.json"
size_kb=$(du -k "$OUT_DIR/gpu-check.tar.gz" 2>/dev/null | cut -f1)
[ "${size_kb:-0}" -lt $((15 * 1024)) ] || echo "gpu-check: warning: the archive is ${size_kb} KiB, over the 16 MiB a file may be" >&2
rm -rf "$SCRATCH"

echo
cat "$OUT_DIR/summary.txt"
exit "$FAILED"
