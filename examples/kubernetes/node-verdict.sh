#!/bin/sh
# Acts on gpuvet's verdict for this node, as node-problem-detector setups expect: a label with
# the verdict, a taint that keeps new pods off a failing node, and a node condition that
# remediation tools (draino, descheduler, your controller) watch.
#
#   node-verdict.sh PROM_FILE            watch the textfile gpuvet validate writes, act on each new one
#   node-verdict.sh --once PROM_FILE     act once and exit
#
# The verdict is read from the Prometheus textfile (`gpuvet validate --prometheus PROM_FILE`):
# the line `gpuvet_node_verdict{host="...",verdict="fail"} 1`. Then:
#
#   verdict     label gpuvet/verdict   taint gpuvet/unhealthy=true:$TAINT_EFFECT   condition GpuvetUnhealthy
#   fail        fail                   added                                      True  (ValidateFailed)
#   pass, warn  pass / warn            removed                                    False (ValidatePassed)
#   none        unknown                left as it is                              left as it is
#
# Environment: NODE_NAME (required, from the downward API), TAINT_EFFECT (NoSchedule, or
# NoExecute to evict running pods too), POLL_S (seconds between checks, default 30), KUBECTL.
# Needs RBAC `get, patch` on nodes and `patch` on nodes/status (see rbac.yaml).
set -eu

: "${NODE_NAME:?NODE_NAME must be set (valueFrom: fieldRef: spec.nodeName)}"
TAINT_EFFECT="${TAINT_EFFECT:-NoSchedule}"
POLL_S="${POLL_S:-30}"
KUBECTL="${KUBECTL:-kubectl}"

verdict_of() {
    sed -n 's/^gpuvet_node_verdict{.*verdict="\([a-z]*\)"} 1$/\1/p' "$1" 2>/dev/null | head -n 1
}

condition() { # STATUS REASON MESSAGE
    now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    "$KUBECTL" patch node "$NODE_NAME" --subresource=status --type=strategic -p \
        "{\"status\":{\"conditions\":[{\"type\":\"GpuvetUnhealthy\",\"status\":\"$1\",\"reason\":\"$2\",\"message\":\"$3\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}"
}

act() { # PROM_FILE
    v="$(verdict_of "$1")"
    case "$v" in
        fail)
            "$KUBECTL" label node "$NODE_NAME" --overwrite gpuvet/verdict=fail
            "$KUBECTL" taint node "$NODE_NAME" --overwrite "gpuvet/unhealthy=true:$TAINT_EFFECT"
            condition True ValidateFailed "gpuvet validate: FAIL (see the verdict file and gpuvet_gpu_check_verdict)"
            ;;
        pass|warn)
            "$KUBECTL" label node "$NODE_NAME" --overwrite "gpuvet/verdict=$v"
            # Removing a taint the node does not have is an error kubectl reports; it is fine.
            "$KUBECTL" taint node "$NODE_NAME" "gpuvet/unhealthy:$TAINT_EFFECT-" 2>/dev/null || true
            condition False ValidatePassed "gpuvet validate: $(echo "$v" | tr a-z A-Z)"
            ;;
        *)
            "$KUBECTL" label node "$NODE_NAME" --overwrite gpuvet/verdict=unknown
            ;;
    esac
    echo "$(date -u +%FT%TZ) $NODE_NAME: gpuvet verdict ${v:-none}"
}

if [ "${1:-}" = "--once" ]; then
    act "$2"
    exit 0
fi
prom="$1"
last=""
while true; do
    # Act when gpuvet replaced the file (a new inode or mtime): once per validation round.
    now="$(stat -c '%i %Y' "$prom" 2>/dev/null || true)"
    if [ -n "$now" ] && [ "$now" != "$last" ]; then
        act "$prom" || echo "$(date -u +%FT%TZ) $NODE_NAME: could not update the node (RBAC?)" >&2
        last="$now"
    fi
    sleep "$POLL_S"
done
