#!/usr/bin/env bash
# Tests examples/slurm/gpuvet-validate.sbatch and gpuvet-collective.sbatch for real: starts a
# private one-node Slurm cluster (munged, slurmctld, slurmd from Debian's packages, as root),
# submits the validate example running `gpuvet validate` on the CPU backend and checks the
# verdict and the fleet view, then submits the collective example as a 2-task job (two gpuvet
# processes meeting through the rendezvous) and checks both ranks' reports agree on one id, and
# stops everything it started. Nothing outside a temporary directory is configured: its own
# munge key and socket, its own slurm.conf on free ports, so a real Slurm on the host is untouched.
#
#   sudo scripts/slurm-test.sh            # needs munge, slurmctld, slurmd, slurm-client
#   sudo scripts/slurm-test.sh --install  # apt-get installs them first
#
# Environment: GPUVET (binary; default target/release/gpuvet, built if missing),
# KEEP=1 keeps the temporary directory for inspection, TIMEOUT (seconds, default 600).
# Exit status: 0 the example ran and produced a passing verdict and fleet view; 1 it did not;
# 2 the test could not run (not root, packages missing).

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GPUVET=${GPUVET:-$ROOT/target/release/gpuvet}
TIMEOUT=${TIMEOUT:-600}
SBATCH_SCRIPT=$ROOT/examples/slurm/gpuvet-validate.sbatch

say() { printf 'slurm-test: %s\n' "$*" >&2; }
die() { say "$1"; exit "${2:-1}"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it starts munged, slurmctld and slurmd)" 2

if [ "${1:-}" = "--install" ]; then
    say "installing munge, slurmctld, slurmd, slurm-client"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq munge slurmctld slurmd slurm-client >/dev/null
fi
for cmd in munged slurmctld slurmd sbatch sinfo scontrol; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run with --install (Debian: apt-get install munge slurmctld slurmd slurm-client)" 2
done

if [ ! -x "$GPUVET" ]; then
    command -v cargo >/dev/null || die "$GPUVET does not exist and cargo is not available" 2
    say "building $GPUVET"
    (cd "$ROOT" && cargo build --release --bin gpuvet)
fi

WORK=$(mktemp -d /tmp/gpuvet-slurm.XXXXXX)
chmod 755 "$WORK"
PIDS=()

cleanup() {
    local rc=$?
    # Stop only what this script started, newest first, by PID.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[$i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        say "kept $WORK (logs: $WORK/*.log)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

# --- munge: a private key and socket -----------------------------------------------------------
mkdir -p "$WORK/munge"
chmod 755 "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge/munge.key"
munged --foreground --force \
    --key-file="$WORK/munge/munge.key" \
    --socket="$WORK/munge/munge.sock" \
    --pid-file="$WORK/munge/munged.pid" \
    --seed-file="$WORK/munge/munged.seed" \
    --log-file="$WORK/munged.log" 2>>"$WORK/munged.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$WORK/munge/munge.sock" ] && break; sleep 0.1; done
[ -S "$WORK/munge/munge.sock" ] || die "munged did not start (see $WORK/munged.log)"

# --- slurm.conf: one node, this host, free ports -----------------------------------------------
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
[ "$SLURMD_PORT" != "$CTLD_PORT" ] || SLURMD_PORT=$((CTLD_PORT + 1))
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/jobs"
export SLURM_CONF=$WORK/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=gpuvet-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurmctld.stdout" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" -N "$NODE" >"$WORK/slurmd.stdout" 2>&1 &
PIDS+=($!)

say "waiting for node $NODE to be idle"
state=""
for _ in $(seq 60); do
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a daemon exited (see $WORK/slurmctld.log, $WORK/slurmd.log)"
    done
    state=$(timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    [ "$state" = "idle" ] && break
    sleep 1
done
[ "$state" = "idle" ] || die "node $NODE is '$state', not idle (see $WORK/slurmctld.log, $WORK/slurmd.log)"

# --- the example, on the CPU backend -----------------------------------------------------------
export GPUVET
export GPUVET_OUT=$WORK/verdicts
export GPUVET_VALIDATE_ARGS="--backend cpu --allow-cpu --quiet --max-time 0.3 --warmup 0.05"
say "submitting $SBATCH_SCRIPT"
set +e
(cd "$WORK/jobs" && timeout "$TIMEOUT" sbatch --wait --time=10 "$SBATCH_SCRIPT")
job_rc=$?
set -e
cat "$WORK"/jobs/gpuvet-validate-*.out >&2 2>/dev/null || true
[ "$job_rc" -ne 124 ] || die "the job did not finish within ${TIMEOUT}s"
[ "$job_rc" -eq 0 ] || die "the job exited $job_rc (node logs: $GPUVET_OUT/logs)"

# --- what it produced ---------------------------------------------------------------------------
verdict=$GPUVET_OUT/$NODE.json
[ -s "$verdict" ] || die "no verdict file $verdict"
grep -q '"kind": "gpuvet-verdict"' "$verdict" || die "$verdict is not a verdict"
grep -q '"verdict": "PASS"' "$verdict" || die "the node verdict is not PASS: $(grep -m1 -A3 '"reasons"' "$verdict")"
[ -s "$GPUVET_OUT/fleet.md" ] || die "no fleet markdown"
[ -s "$GPUVET_OUT/fleet.csv" ] || die "no fleet CSV"
"$GPUVET" aggregate "$GPUVET_OUT" --format json | grep -q '"nodes": 1' || die "aggregate did not see the node"
say "OK: the Slurm example produced a PASS verdict for $NODE and a fleet view"

# --- the collective example: 2 tasks, one world -------------------------------------------------
COLLECTIVE_SCRIPT=$ROOT/examples/slurm/gpuvet-collective.sbatch
export GPUVET_OUT=$WORK/collective
export GPUVET_COLLECTIVE_ARGS="--backend cpu --quiet --max-time 0.2 --warmup 0.02 --size 64KiB,1MiB --op all_reduce,all_gather --dtype bf16,f32"
export GPUVET_RENDEZVOUS_TIMEOUT=60
say "submitting $COLLECTIVE_SCRIPT as 2 tasks"
set +e
(cd "$WORK/jobs" && timeout "$TIMEOUT" sbatch --wait --time=10 -n 2 "$COLLECTIVE_SCRIPT")
job_rc=$?
set -e
cat "$WORK"/jobs/gpuvet-collective-*.out >&2 2>/dev/null || true
[ "$job_rc" -ne 124 ] || die "the collective job did not finish within ${TIMEOUT}s"
[ "$job_rc" -eq 0 ] || die "the collective job exited $job_rc (rank logs: $GPUVET_OUT/logs)"
r0=$GPUVET_OUT/collective.json
r1=$GPUVET_OUT/collective.rank1.json
[ -s "$r0" ] && [ -s "$r1" ] || die "missing rank reports: $(ls "$GPUVET_OUT")"
ids=$(python3 -c 'import json,sys
ws=[json.load(open(p))["world"] for p in sys.argv[1:]]
assert [w["rank"] for w in ws] == [0, 1] and all(w["size"] == 2 for w in ws), ws
assert all(w["launcher"] == "slurm" for w in ws), ws
print(" ".join(w["id_sha256"] for w in ws))' "$r0" "$r1") || die "the rank reports do not record the world"
[ "$(echo "$ids" | tr ' ' '\n' | sort -u | wc -l)" -eq 1 ] || die "the ranks did not agree on one id: $ids"
grep -q '"status": "ok"' "$r1" || die "rank 1 has no verified result"
say "OK: the collective example ran 2 ranks that agreed on one id ($ids)"
