#!/usr/bin/env python3
"""Reference timing for gpuvet's CPU matmul: numpy (OpenBLAS) f32 `a @ b`.

Times C = A @ B for f32 N×N×N (default 2048³) after a warm-up, repeats it many times and prints
the median GFLOP/s (2·N³ FLOPs per product), with min/max so noise is visible. Run it in the
same session as gpuvet's own measurement (docs/perf/cpu.md) so both see the same machine load.

    python3 scripts/numpy_matmul.py [--n 2048] [--runs 15] [--threads T] [--gflops-only]
    python3 scripts/numpy_matmul.py --blas-info [--threads T]

--threads sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS before numpy loads. --gflops-only prints
just the median GFLOP/s (for scripts/cpu-vs-numpy.sh); --blas-info prints which BLAS numpy
runs and which of its kernels it chose on this CPU (OpenBLAS's core name, through threadpoolctl
when it is installed, else straight from the library).
"""
import argparse
import os
import statistics
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2048, help="M = N = K (default 2048)")
    p.add_argument("--runs", type=int, default=15, help="timed repetitions (default 15)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (default 1)")
    p.add_argument("--threads", type=int, default=0, help="BLAS threads (0 = library default)")
    p.add_argument("--gflops-only", action="store_true", help="print only the median GFLOP/s")
    p.add_argument("--blas-info", action="store_true", help="print the BLAS and its kernel, then exit")
    args = p.parse_args()
    if args.threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    import numpy as np  # imported after the thread variables are set

    if args.blas_info:
        print(blas_info(np))
        return 0
    n = args.n
    rng = np.random.default_rng(0)
    a = rng.uniform(-1.0, 1.0, (n, n)).astype(np.float32)
    b = rng.uniform(-1.0, 1.0, (n, n)).astype(np.float32)
    c = np.empty((n, n), dtype=np.float32)

    end = time.perf_counter() + args.warmup
    while time.perf_counter() < end:
        np.matmul(a, b, out=c)

    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)

    flops = 2.0 * n * n * n
    med = statistics.median(times)
    if args.gflops_only:
        print(f"{flops / med / 1e9:.1f}")
        return 0
    print(
        f"numpy {np.__version__} f32 {n}x{n}x{n}: median {flops / med / 1e9:.1f} GFLOP/s "
        f"(best {flops / min(times) / 1e9:.1f}, worst {flops / max(times) / 1e9:.1f}, "
        f"{len(times)} runs, median {med * 1e3:.2f} ms)"
    )
    return 0


def blas_info(np) -> str:
    """`numpy X, OpenBLAS V, core C, N threads (layer)`: the core is the kernel set OpenBLAS's
    DYNAMIC_ARCH picked for this CPU at load time (e.g. Haswell, SkylakeX, Cooperlake,
    SapphireRapids), which decides its speed far more than its version does."""
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                return (
                    f"numpy {np.__version__}, {lib.get('internal_api')} {lib.get('version')}, "
                    f"core {lib.get('architecture')}, {lib.get('num_threads')} threads "
                    f"({lib.get('threading_layer')})"
                )
    except ImportError:
        pass
    return f"numpy {np.__version__}, {openblas_from_library(np)}"


def openblas_from_library(np) -> str:
    """The core name straight from numpy's bundled OpenBLAS (no threadpoolctl)."""
    import ctypes
    import glob

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas_", "openblas_", ""):
            for suffix in ("64_", ""):
                fn = getattr(lib, f"{prefix}get_corename{suffix}", None)
                cfg = getattr(lib, f"{prefix}get_config{suffix}", None)
                if fn is not None:
                    fn.restype = ctypes.c_char_p
                    config = ""
                    if cfg is not None:
                        cfg.restype = ctypes.c_char_p
                        config = cfg().decode()
                    return f"OpenBLAS core {fn().decode()} ({config})"
    return "BLAS kernel unknown (install threadpoolctl to see it)"


if __name__ == "__main__":
    sys.exit(main())
