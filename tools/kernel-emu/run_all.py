"""Runs every lane-level model (CI's entry point: `python3 tools/kernel-emu/run_all.py`).

Each model runs as its own process, two at a time (CI has 2 cores); a model fails when it
exits non-zero or prints a failure marker (FAIL, a race, NaN outputs, an error above its
bound). Prints one line per model and a closing `N passed, N failed` line; exits 1 on any
failure. `--quick` drops the slowest shapes (for a local check while editing a kernel).
"""
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))



def attention_errors(bound):
    """A failure check for the attention models: NaNs, a warning, or an |O| error above
    `bound` (their inputs make bf16/f16 rounding errors of O stay below 0.01)."""
    def bad(out):
        errs = [float(x) for x in re.findall(r"max\|O err\| ([0-9.e+-]+)", out)]
        return (not errs or max(errs) > bound or re.search(r"nan=[1-9]|WARNING|DIFFERS|FAIL", out)
                is not None)
    return bad


# (name, argv, failure: a regular expression found in the output, or a function of it)
MODELS = [
    ("hopper self-tests", ["hopper.py"], None),
    ("sm90 wrappers generated", ["gen_sm90_wrappers.py", "--check"], None),
    ("wgmma ring mutations caught", ["wgmma_gemm.py", "--mutate"], r"NOT caught"),
    ("wgmma gemm", ["wgmma_gemm.py"], r"FAIL"),
    ("mma gemm bf16,f16", ["mma_gemm.py", "bf16,f16"], r"FAIL|races: \{"),
    ("mma gemm s8,e4m3,tf32", ["mma_gemm.py", "s8,e4m3,tf32"], r"FAIL|races: \{"),
    ("mma split-k decode", ["mma_gemm.py", "--splitk"], r"FAIL|races: \{"),
    ("simt", ["simt.py"], r"False\s*$|FAIL"),
    ("flash prefill", ["flash.py"], attention_errors(0.02)),
    ("flash decode", ["decode.py"], attention_errors(0.02)),
    ("fa3 prefill (sm90)", ["fa3.py"], r"FAIL"),
    ("fa3 ordering mutations caught", ["fa3.py", "--mutate"], r"NOT caught"),
    ("memory", ["mem.py"], r"FAIL"),
    ("bank conflicts", ["banks.py"], r"FAIL"),
]


def run(model):
    name, argv, bad = model
    t0 = time.time()
    p = subprocess.run([sys.executable, *argv], cwd=HERE, capture_output=True, text=True)
    out = p.stdout + p.stderr
    if bad is None:
        found = False
    elif callable(bad):
        found = bad(out)
    else:
        found = re.search(bad, out, re.M) is not None
    failed = p.returncode != 0 or found
    return name, failed, time.time() - t0, out


def main():
    models = MODELS
    if "--quick" in sys.argv:
        models = [m for m in MODELS if m[1][0] not in ("decode.py", "flash.py")]
    passed = failed = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, bad, secs, out in pool.map(run, models):
            print(f"{'FAIL' if bad else 'ok  '} {name:32} {secs:6.1f} s", flush=True)
            if bad:
                failed += 1
                print("\n".join("    | " + l for l in out.strip().splitlines()[-25:]))
            else:
                passed += 1
    print(f"kernel models: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
