#!/usr/bin/env python3
"""PyTorch measuring what gpuvet measures, in the same run, for a side-by-side check.

    torch_reference.py measure --out torch.json [--size 8192] [--copy-bytes 4294967296] [--only bf16,copy]
    torch_reference.py compare [--torch torch.json] GPUVET_JSON...
    torch_reference.py record --out record.json --steps steps.tsv --meta meta.txt --info info.json
                              [--torch torch.json] GPUVET_JSON...

`measure` times torch.matmul in bf16, fp16, tf32 and true fp32 (TF32 off), fp8 e4m3 through
torch._scaled_mm (scales 1.0, bf16 output, B column-major as cuBLASLt requires), int8 through
torch._int_mm, and a device-to-device tensor copy. Inputs are random (uniform in [-1, 1) like
gpuvet's; zeros would run faster and flatter the figures). Timing: CUDA events around batches
of iterations long enough to be well above event resolution, after a warm-up; the median of
the samples is reported, with a bootstrap-free 95% interval of the median from order
statistics.

It also times attention with torch.nn.functional.scaled_dot_product_attention restricted to
one backend at a time (torch.nn.attention.sdpa_kernel: FLASH_ATTENTION, CUDNN_ATTENTION,
EFFICIENT_ATTENTION; `compare` takes the fastest) on the
shapes gpuvet's own attention kernels are measured on (ATTENTION_SHAPES; scripts/gpu-check.sh
runs `gpuvet bench attention --impl all` on the same ones): prefill in FLOP/s counting visible
(query, key) pairs only, decode in bytes of Q, K, V and O per second.

`transfer` times host->device and device->host copies the way PyTorch code does them from
pinned memory: `pinned.to(device, non_blocking=True)` and `gpu.to("cpu", non_blocking=True)`,
at --transfer-bytes, against gpuvet's `bench transfer --memory pinned` (copy engine).

`compare` prints gpuvet's medians (from its --json reports) beside PyTorch's, with the ratio.
`record` writes the same pairs as the machine-readable record of scripts/gpu-check.sh (format in
docs/perf/records/README.md, checked by tests/perf_records.rs).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time


def order_stat_ci(samples):
    """95% confidence interval of the median from order statistics (no resampling)."""
    s = sorted(samples)
    n = len(s)
    if n < 6:
        return s[0], s[-1]
    half = 1.96 * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    return s[lo], s[hi]


def time_op(torch, fn, min_sample_s=0.02, warmup_s=0.5, samples=30, max_s=6.0):
    """Median seconds per call of fn, timed with CUDA events over batches."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    # Warm-up: clocks ramp, cuBLAS picks and caches its kernel.
    t0 = time.time()
    fn()
    torch.cuda.synchronize()
    while time.time() - t0 < warmup_s:
        fn()
    torch.cuda.synchronize()
    # One probe to size batches.
    start.record()
    fn()
    stop.record()
    stop.synchronize()
    one = max(start.elapsed_time(stop) / 1e3, 1e-6)
    reps = max(1, int(math.ceil(min_sample_s / one)))
    times = []
    t0 = time.time()
    while len(times) < samples and (time.time() - t0 < max_s or len(times) < 5):
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3 / reps)
    med = statistics.median(times)
    lo, hi = order_stat_ci(times)
    return {
        "median_s": med,
        "ci95_low_s": lo,
        "ci95_high_s": hi,
        "samples": len(times),
        "iterations_per_sample": reps,
    }


def cublaslt_version():
    """cublasLtGetVersion() of the libcublasLt this process has loaded (after a matmul), with its
    path: the same call gpuvet records, so the two sides can be seen to use the same build."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libcublasLt" in line}
    except OSError:
        return None
    for p in sorted(paths):
        try:
            lib = ctypes.CDLL(p)
            lib.cublasLtGetVersion.restype = ctypes.c_size_t
            return {"path": p, "version": int(lib.cublasLtGetVersion())}
        except (OSError, AttributeError):
            continue
    return None


def measure(args):
    import torch

    if not torch.cuda.is_available():
        print("torch_reference: no CUDA device visible to PyTorch", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    n = args.size
    out = {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "device": torch.cuda.get_device_name(0),
        "results": [],
    }
    gen = torch.Generator(device=dev)
    gen.manual_seed(20261128)

    def uniform(shape, dtype=torch.float32):
        return (torch.rand(shape, device=dev, generator=gen) * 2 - 1).to(dtype)

    def set_tf32(on):
        # "highest" = true fp32, "high" = TF32 for float32 matmuls; the one switch every
        # PyTorch 2.x honours (mixing allow_tf32 with the newer fp32_precision raises in 2.9+).
        torch.set_float32_matmul_precision("high" if on else "highest")

    only = set(args.only.split(",")) if args.only else None

    def wanted(name):
        return only is None or name in only

    flops = 2.0 * n * n * n

    def add_matmul(r, name, unit, api):
        # One n×n×n matmul result: its rate in the output and a line on stderr.
        r.update(op="matmul", dtype=name, shape=[n, n, n], rate=flops / r["median_s"], unit=unit,
                 api=api)
        out["results"].append(r)
        print(f"torch matmul {name:9} {r['rate'] / 1e12:8.1f} T{unit}", file=sys.stderr)

    cases = [
        ("bf16", torch.bfloat16, False),
        ("f16", torch.float16, False),
        ("tf32", torch.float32, True),
        ("f32", torch.float32, False),
    ]
    for name, dtype, tf32 in cases:
        if not wanted(name):
            continue
        set_tf32(tf32)
        a, b = uniform((n, n), dtype), uniform((n, n), dtype)
        c = torch.empty((n, n), device=dev, dtype=dtype)
        r = time_op(torch, lambda: torch.matmul(a, b, out=c))
        add_matmul(r, name, "FLOP/s", "torch.matmul" + (" (TF32 on)" if tf32 else ""))
        del a, b, c
    set_tf32(False)

    if wanted("fp8_e4m3") and hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm"):
        try:
            a = uniform((n, n)).to(torch.float8_e4m3fn)
            # B must be column-major: take an N×K row-major "weight" and transpose the view.
            w = uniform((n, n)).to(torch.float8_e4m3fn)
            b = w.t()
            one = torch.tensor(1.0, device=dev)
            r = time_op(torch, lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one,
                                                         out_dtype=torch.bfloat16))
            add_matmul(r, "fp8_e4m3", "FLOP/s", "torch._scaled_mm (scales 1, bf16 out)")
            del a, w, b
        except RuntimeError as e:
            print(f"torch fp8 skipped: {e}", file=sys.stderr)

    if wanted("int8") and hasattr(torch, "_int_mm"):
        try:
            a = torch.randint(-127, 128, (n, n), device=dev, dtype=torch.int8, generator=gen)
            w = torch.randint(-127, 128, (n, n), device=dev, dtype=torch.int8, generator=gen)
            b = w.t()
            r = time_op(torch, lambda: torch._int_mm(a, b))
            add_matmul(r, "int8", "OP/s", "torch._int_mm")
            del a, w, b
        except RuntimeError as e:
            print(f"torch int8 skipped: {e}", file=sys.stderr)

    if wanted("copy"):
        elems = args.copy_bytes // 4
        src = uniform((elems,))
        dst = torch.empty_like(src)
        r = time_op(torch, lambda: dst.copy_(src))
        moved = 2 * elems * 4
        r.update(op="copy", dtype="f32", bytes=args.copy_bytes, rate=moved / r["median_s"],
                 unit="B/s", api="Tensor.copy_ (read + write counted)")
        out["results"].append(r)
        print(f"torch copy {args.copy_bytes >> 20} MiB   {r['rate'] / 1e9:8.1f} GB/s", file=sys.stderr)
        del src, dst

    if wanted("transfer"):
        measure_transfers(torch, dev, args.transfer_bytes, out)

    if not args.no_attention and wanted("attention"):
        measure_attention(torch, dev, gen, out)

    out["cublaslt"] = cublaslt_version()
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    return 0


def measure_transfers(torch, dev, nbytes, out):
    """Host->device and device->host from pinned memory with Tensor.to(..., non_blocking=True),
    as inference code moves tensors; appends results to out["results"]."""
    elems = nbytes // 4
    host = torch.empty(elems, dtype=torch.float32, pin_memory=True).uniform_(-1, 1)
    gpu = torch.empty(elems, dtype=torch.float32, device=dev).uniform_(-1, 1)
    cases = [
        ("h2d", lambda: host.to(dev, non_blocking=True), "pinned.to(device, non_blocking=True)"),
        ("d2h", lambda: gpu.to("cpu", non_blocking=True), "gpu.to('cpu', non_blocking=True)"),
    ]
    for direction, fn, api in cases:
        r = time_op(torch, fn)
        r.update(op="transfer", direction=direction, memory="pinned", dtype="f32", bytes=nbytes,
                 rate=nbytes / r["median_s"], unit="B/s", api=api)
        out["results"].append(r)
        print(f"torch transfer {direction} {nbytes >> 20} MiB {r['rate'] / 1e9:8.2f} GB/s", file=sys.stderr)
    del host, gpu


# (batch, q heads, kv heads, q length, kv length, head dim, causal), bf16. Prefill: 16k tokens
# at head dim 128 (Llama-3-8B heads), causal and not; decode: one query, 32k keys, batch 8: the
# KV cache (1 GiB) is far larger than any L2.
ATTENTION_SHAPES = [
    (4, 32, 8, 4096, 4096, 128, False),
    (4, 32, 8, 4096, 4096, 128, True),
    (8, 32, 8, 1, 32768, 128, True),
]


def attention_key(b, hq, hkv, lq, lkv, d, causal):
    return ("attention", "bf16", (b, hq, hkv, lq, lkv, d, bool(causal)))


def visible_pairs(lq, lkv, causal):
    """(query, key) pairs that take part, queries aligned to the end of the keys (gpuvet's rule)."""
    if not causal:
        return lq * lkv
    return lq * (lkv - lq) + lq * (lq + 1) // 2


def measure_attention(torch, dev, gen, out):
    """SDPA per backend on ATTENTION_SHAPES; appends results to out["results"]."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError as e:
        print(f"torch attention skipped: {e}", file=sys.stderr)
        return
    import torch.nn.functional as F

    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    for b, hq, hkv, lq, lkv, d, causal in ATTENTION_SHAPES:
        q = (torch.rand((b, hq, lq, d), device=dev, generator=gen) * 2 - 1).to(torch.bfloat16)
        k = (torch.rand((b, hkv, lkv, d), device=dev, generator=gen) * 2 - 1).to(torch.bfloat16)
        v = (torch.rand((b, hkv, lkv, d), device=dev, generator=gen) * 2 - 1).to(torch.bfloat16)
        # SDPA's is_causal aligns queries to the top-left; gpuvet aligns them to the end of the
        # keys. The two agree when lq == lkv, and for lq == 1 the end-aligned mask hides nothing.
        if causal and lq not in (1, lkv):
            print(f"torch attention: causal {lq}x{lkv} has no SDPA equivalent, skipped", file=sys.stderr)
            continue
        is_causal = causal and lq == lkv
        decode = lq <= 8
        moved = 2 * (b * hq * lq * d + b * hkv * lkv * d) * 2
        flops = 4.0 * b * hq * d * visible_pairs(lq, lkv, causal)
        for name, backend in backends:
            for gqa in (True, False):
                try:
                    if gqa:
                        kk, vv, extra, note = k, v, {"enable_gqa": True}, "enable_gqa"
                    else:
                        # Backends without GQA: K/V repeated to Hq heads outside the timing.
                        rep_ = hq // hkv
                        kk = k.repeat_interleave(rep_, dim=1)
                        vv = v.repeat_interleave(rep_, dim=1)
                        extra, note = {}, "K/V repeated to Hq heads"
                    with sdpa_kernel([backend]):
                        fn = lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=is_causal, **extra)
                        fn()
                        r = time_op(torch, fn)
                except (RuntimeError, TypeError) as e:
                    last = str(e).splitlines()[0] if str(e) else type(e).__name__
                    continue
                r.update(op="attention", dtype="bf16", shape=[b, hq, hkv, lq, lkv, d, bool(causal)],
                         api=f"SDPA {name} ({note})", backend=name,
                         rate=(moved if decode else flops) / r["median_s"],
                         unit="B/s" if decode else "FLOP/s")
                out["results"].append(r)
                shown = f"{r['rate'] / 1e9:8.1f} GB/s" if decode else f"{r['rate'] / 1e12:8.1f} TFLOP/s"
                print(f"torch attention {name:5} b{b} h{hq}kv{hkv} q{lq} kv{lkv} d{d}"
                      f"{' causal' if causal else ''}: {shown} ({note})", file=sys.stderr)
                break
            else:
                print(f"torch attention {name} b{b} q{lq} kv{lkv}: unavailable ({last})", file=sys.stderr)
        del q, k, v


def load_reports(paths):
    """(path, report) of every gpuvet JSON report that can be read; the rest are named on stderr."""
    out = []
    for p in paths:
        try:
            with open(p) as f:
                out.append((p, json.load(f)))
        except (OSError, ValueError) as e:
            print(f"cannot read {p}: {e}", file=sys.stderr)
    return out


def result_key(r):
    """(key matching PyTorch's results or None, label) of one gpuvet result."""
    w = r.get("workload", {})
    if w.get("kind") == "matmul":
        key = ("matmul", r.get("dtype"), (w["m"], w["n"], w["k"]))
        return key, f"matmul {r.get('dtype')} {w['m']}x{w['n']}x{w['k']} {w.get('b_layout', 'kn')}"
    if w.get("kind") == "attention":
        key = attention_key(w["batch"], w["q_heads"], w["kv_heads"], w["q_len"], w["kv_len"],
                            w["head_dim"], w["causal"])
        key = key if w.get("dtype", r.get("dtype")) == "bf16" else None
        return key, (f"attention h{w['q_heads']}kv{w['kv_heads']} q{w['q_len']} kv{w['kv_len']} "
                     f"d{w['head_dim']}{' causal' if w['causal'] else ''}")
    if w.get("kind") == "memory":
        key = ("copy", "f32", w.get("bytes")) if w.get("op") == "copy" else None
        return key, f"{w.get('op')} {w.get('bytes', 0) >> 20} MiB"
    if w.get("kind") == "transfer":
        pinned = w.get("memory") == "pinned"
        key = ("transfer", w.get("direction"), w.get("bytes")) if pinned else None
        return key, f"transfer {w.get('direction')} {w.get('memory')} {w.get('bytes', 0) >> 20} MiB"
    return None, r.get("id", "?")


def fmt_rate(value, unit):
    """A rate with an SI prefix that keeps 3-4 significant digits: `27.97 G`, `785.3 T`."""
    for scale, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.4g} {p}{unit}"
    return f"{value:.4g} {unit}"


def rel_ci(stats):
    """Half-width of the 95% interval of the median, relative to the median (None if unknown)."""
    med = stats.get("median_s")
    if not med:
        return None
    return (stats.get("ci95_high_s", med) - stats.get("ci95_low_s", med)) / 2 / med


def torch_map(path):
    """PyTorch results keyed like result_key (attention: the fastest SDPA backend). `path` may
    name several files, comma-separated (runs at different sizes): their results are merged
    into the first one's record."""
    if not path:
        return {}, None
    res = None
    for p in path.split(","):
        if not p or not os.path.exists(p):
            continue
        with open(p) as f:
            r = json.load(f)
        if res is None:
            res = r
        else:
            res["results"].extend(r.get("results", []))
    if res is None:
        return {}, None
    tmap = {}
    for r in res["results"]:
        if r["op"] == "matmul":
            tmap[("matmul", r["dtype"], tuple(r["shape"]))] = r
        elif r["op"] == "attention":
            key = attention_key(*r["shape"])
            if key not in tmap or r["rate"] > tmap[key]["rate"]:
                tmap[key] = r
        elif r["op"] == "transfer":
            tmap[("transfer", r["direction"], r["bytes"])] = r
        else:
            tmap[("copy", "f32", r["bytes"])] = r
    return tmap, res


def figures(reports, tmap):
    """One figure per gpuvet result that has a rate (verified or not: a wrong result is shown)."""
    out = []
    for path, rep in reports:
        for r in rep.get("results", []):
            stats = r.get("stats") or {}
            rate = (r.get("throughput") or r.get("bandwidth") or {}).get("value")
            verified = r.get("status") == "ok" and bool((r.get("verification") or {}).get("passed"))
            key, label = result_key(r)
            t = tmap.get(key) if key else None
            fig = {
                "id": r.get("id"),
                "label": label,
                "implementation": r.get("implementation"),
                "report": os.path.basename(path),
                "unit": (r.get("throughput") or {}).get("unit") or "B/s",
                "gpuvet": rate,
                "gpuvet_ci95_rel": rel_ci(stats) if stats else None,
                "peak_fraction": r.get("peak_fraction"),
                "verified": verified,
                "status": r.get("status"),
                "torch": t["rate"] if t else None,
                "torch_api": t.get("api") if t else None,
                "torch_ci95_rel": rel_ci(t) if t else None,
                "ratio": (rate / t["rate"]) if (t and rate) else None,
            }
            if r.get("error"):
                fig["error"] = r["error"]
            out.append(fig)
    return out


def compare(args):
    tmap, _ = torch_map(args.torch)
    figs = figures(load_reports(args.gpuvet), tmap)
    print(f"{'workload [implementation]':56} {'gpuvet':>15} {'±CI95':>7} {'PyTorch':>15} {'±CI95':>7} {'ratio':>7}")
    for f in figs:
        label = f"{f['label']} [{f['implementation']}]" + ("" if f["verified"] else " UNVERIFIED")
        if f["gpuvet"] is None:
            print(f"{label:56} {'—':>15} {f.get('status') or '':>7}")
            continue
        ci = f["gpuvet_ci95_rel"]
        cis = f"{ci * 100:5.2f}%" if ci is not None else "—"
        row = f"{label:56} {fmt_rate(f['gpuvet'], f['unit']):>15} {cis:>7}"
        if f["torch"]:
            row += (f" {fmt_rate(f['torch'], f['unit']):>15} {f['torch_ci95_rel'] * 100:6.2f}%"
                    f" {f['ratio']:6.3f}x")
            if f["label"].startswith("attention"):
                row += f"  vs {f['torch_api']}"
        print(row)
    print("(copy counts read + write; transfers are one way, pinned, against Tensor.to(non_blocking=True); "
          "attention is compared with the fastest SDPA backend; "
          "CI95 = half-width of the 95% interval of the median, relative; ratio = gpuvet / PyTorch)")
    for line in decode_vs_copy(figs):
        print(line)
    return 0


def decode_vs_copy(figs):
    """Decode attention (a B/s figure) as a share of the best copy bandwidth gpuvet measured in
    the same run: the issue's yardstick for flash-decode at long KV lengths."""
    copies = [f["gpuvet"] for f in figs
              if f["label"].startswith("copy") and f["gpuvet"] and f["verified"]]
    if not copies:
        return []
    best = max(copies)
    lines = [f"decode attention vs copy bandwidth ({fmt_rate(best, 'B/s')}, best verified copy):"]
    for f in figs:
        if f["label"].startswith("attention") and f["unit"] == "B/s" and f["gpuvet"]:
            flag = "" if f["verified"] else " UNVERIFIED"
            lines.append(f"  {f['label']} [{f['implementation']}]{flag}: "
                         f"{fmt_rate(f['gpuvet'], 'B/s')} = {f['gpuvet'] / best:.3f} of copy")
    return lines


def read_meta(path):
    meta = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.partition(": ")
                if sep and k and not k.startswith(" "):
                    meta.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return meta


def read_steps(path):
    steps = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                steps.append({"name": parts[0], "status": parts[1], "seconds": int(parts[2]),
                              "limit_s": int(parts[3])})
    return steps


def device_block(info_path):
    """GPU (or CPU) identity and library versions from `gpuvet info --json`."""
    try:
        with open(info_path) as f:
            info = json.load(f)
    except (OSError, ValueError, TypeError):
        return None, {}
    devs = info.get("devices") or [{}]
    d = devs[0]
    det = d.get("details") or {}
    dev = {
        "name": d.get("name"),
        "uuid": d.get("uuid"),
        "pci_bus_id": d.get("pci_bus_id"),
        "compute_capability": d.get("compute_capability"),
        "driver": d.get("driver_version"),
        "cuda_driver_api": det.get("cuda_driver_api"),
        "nvrtc_version": det.get("nvrtc_version"),
        "cublaslt": det.get("cublaslt"),
        "cublaslt_version": det.get("cublaslt_version"),
        "count": len(devs),
    }
    return dev, info


def record(args):
    tmap, tres = torch_map(args.torch)
    reports = load_reports(args.gpuvet)
    dev, info = device_block(args.info)
    tool = info.get("tool") or (reports[0][1].get("tool") if reports else {}) or {}
    kernel_hash = next((rep.get("config", {}).get("kernel_hash") for _, rep in reports
                        if rep.get("config", {}).get("kernel_hash")), None)
    meta = read_meta(args.meta)
    rec = {
        "record_version": 1,
        "date": meta.get("date"),
        "command": meta.get("command"),
        "backend": args.backend,
        "device": dev,
        "host": info.get("host"),
        "gpuvet": {"version": tool.get("version"), "commit": meta.get("commit") or tool.get("git_sha"),
                   "git_sha": tool.get("git_sha"), "kernel_hash": kernel_hash},
        "torch": ({"version": tres.get("torch_version"), "cuda": tres.get("cuda_version"),
                   "device": tres.get("device"), "cublaslt": tres.get("cublaslt")} if tres else None),
        "steps": read_steps(args.steps),
        "figures": figures(reports, tmap),
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("--size", type=int, default=8192)
    m.add_argument("--copy-bytes", type=int, default=4 << 30)
    m.add_argument("--transfer-bytes", type=int, default=1 << 30)
    m.add_argument("--no-attention", action="store_true", help="skip the SDPA attention shapes")
    m.add_argument("--only", help="comma-separated subset: bf16,f16,tf32,f32,fp8_e4m3,int8,copy,transfer,attention")
    c = sub.add_parser("compare")
    c.add_argument("--torch")
    c.add_argument("gpuvet", nargs="*")
    r = sub.add_parser("record")
    r.add_argument("--out", required=True)
    r.add_argument("--steps", required=True)
    r.add_argument("--meta", required=True)
    r.add_argument("--info")
    r.add_argument("--backend", required=True)
    r.add_argument("--torch")
    r.add_argument("gpuvet", nargs="*")
    args = ap.parse_args()
    return {"measure": measure, "compare": compare, "record": record}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
