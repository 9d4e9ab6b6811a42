#!/usr/bin/env python3
"""PyTorch measuring what gpuvet measures, in the same run, for a side-by-side check.

    torch_reference.py measure --out torch.json [--size 8192] [--copy-bytes 4294967296]
    torch_reference.py compare --torch torch.json GPUVET_JSON...

`measure` times torch.matmul in bf16, fp16, tf32 and true fp32 (TF32 off), fp8 e4m3 through
torch._scaled_mm (scales 1.0, bf16 output, B column-major as cuBLASLt requires), int8 through
torch._int_mm, and a device-to-device tensor copy. Inputs are random (uniform in [-1, 1) like
gpuvet's; zeros would run faster and flatter the figures). Timing: CUDA events around batches
of iterations long enough to be well above event resolution, after a warm-up; the median of
the samples is reported, with a bootstrap-free 95% interval of the median from order
statistics.

It also times attention with torch.nn.functional.scaled_dot_product_attention restricted to
one backend at a time (torch.nn.attention.sdpa_kernel: FLASH_ATTENTION, CUDNN_ATTENTION) on the
shapes gpuvet's own attention kernels are measured on (ATTENTION_SHAPES; scripts/gpu-check.sh
runs `gpuvet bench attention --impl all` on the same ones): prefill in FLOP/s counting visible
(query, key) pairs only, decode in bytes of Q, K, V and O per second.

`compare` prints gpuvet's medians (from its --json reports) beside PyTorch's, with the ratio.
"""

import argparse
import json
import math
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

    flops = 2.0 * n * n * n
    cases = [
        ("bf16", torch.bfloat16, False),
        ("f16", torch.float16, False),
        ("tf32", torch.float32, True),
        ("f32", torch.float32, False),
    ]
    for name, dtype, tf32 in cases:
        set_tf32(tf32)
        a, b = uniform((n, n), dtype), uniform((n, n), dtype)
        c = torch.empty((n, n), device=dev, dtype=dtype)
        r = time_op(torch, lambda: torch.matmul(a, b, out=c))
        r.update(op="matmul", dtype=name, shape=[n, n, n], rate=flops / r["median_s"], unit="FLOP/s",
                 api="torch.matmul" + (" (TF32 on)" if tf32 else ""))
        out["results"].append(r)
        print(f"torch matmul {name:9} {r['rate'] / 1e12:8.1f} TFLOP/s", file=sys.stderr)
        del a, b, c
    set_tf32(False)

    if hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm"):
        try:
            a = uniform((n, n)).to(torch.float8_e4m3fn)
            # B must be column-major: take an N×K row-major "weight" and transpose the view.
            w = uniform((n, n)).to(torch.float8_e4m3fn)
            b = w.t()
            one = torch.tensor(1.0, device=dev)
            r = time_op(torch, lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one,
                                                         out_dtype=torch.bfloat16))
            r.update(op="matmul", dtype="fp8_e4m3", shape=[n, n, n], rate=flops / r["median_s"],
                     unit="FLOP/s", api="torch._scaled_mm (scales 1, bf16 out)")
            out["results"].append(r)
            print(f"torch matmul fp8_e4m3  {r['rate'] / 1e12:8.1f} TFLOP/s", file=sys.stderr)
            del a, w, b
        except RuntimeError as e:
            print(f"torch fp8 skipped: {e}", file=sys.stderr)

    if hasattr(torch, "_int_mm"):
        try:
            a = torch.randint(-127, 128, (n, n), device=dev, dtype=torch.int8, generator=gen)
            w = torch.randint(-127, 128, (n, n), device=dev, dtype=torch.int8, generator=gen)
            b = w.t()
            r = time_op(torch, lambda: torch._int_mm(a, b))
            r.update(op="matmul", dtype="int8", shape=[n, n, n], rate=flops / r["median_s"],
                     unit="OP/s", api="torch._int_mm")
            out["results"].append(r)
            print(f"torch matmul int8      {r['rate'] / 1e12:8.1f} TOP/s", file=sys.stderr)
            del a, w, b
        except RuntimeError as e:
            print(f"torch int8 skipped: {e}", file=sys.stderr)

    elems = args.copy_bytes // 4
    src = uniform((elems,))
    dst = torch.empty_like(src)
    r = time_op(torch, lambda: dst.copy_(src))
    moved = 2 * elems * 4
    r.update(op="copy", dtype="f32", bytes=args.copy_bytes, rate=moved / r["median_s"], unit="B/s",
             api="Tensor.copy_ (read + write counted)")
    out["results"].append(r)
    print(f"torch copy {args.copy_bytes >> 20} MiB   {r['rate'] / 1e9:8.1f} GB/s", file=sys.stderr)

    if not args.no_attention:
        measure_attention(torch, dev, gen, out)

    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    return 0


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

    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]
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


def gpuvet_rows(paths):
    """(key, label, rate, unit, rel_ci) of every valid gpuvet result in the reports."""
    rows = []
    for p in paths:
        try:
            with open(p) as f:
                rep = json.load(f)
        except (OSError, ValueError) as e:
            print(f"compare: cannot read {p}: {e}", file=sys.stderr)
            continue
        for r in rep.get("results", []):
            w = r.get("workload", {})
            stats = r.get("stats") or {}
            rate = (r.get("throughput") or r.get("bandwidth") or {}).get("value")
            ok = r.get("status") == "ok" and (r.get("verification") or {}).get("passed")
            if not rate or not stats:
                continue
            med = stats.get("median_s")
            ci = (stats.get("ci95_high_s", med) - stats.get("ci95_low_s", med)) / 2 / med if med else None
            if w.get("kind") == "matmul":
                key = ("matmul", r.get("dtype"), (w["m"], w["n"], w["k"]))
                label = f"matmul {r.get('dtype')} {w['m']}x{w['n']}x{w['k']} {w.get('b_layout', 'kn')}"
            elif w.get("kind") == "attention":
                key = attention_key(w["batch"], w["q_heads"], w["kv_heads"], w["q_len"], w["kv_len"],
                                    w["head_dim"], w["causal"])
                key = key if w.get("dtype", r.get("dtype")) == "bf16" else None
                label = (f"attention h{w['q_heads']}kv{w['kv_heads']} q{w['q_len']} kv{w['kv_len']} "
                         f"d{w['head_dim']}{' causal' if w['causal'] else ''}")
            elif w.get("kind") == "memory" and w.get("op") == "copy":
                key = ("copy", "f32", w.get("bytes"))
                label = f"copy {w.get('bytes', 0) >> 20} MiB"
            else:
                key = None
                label = r.get("id", "?")
            label += f" [{r.get('implementation')}]" + ("" if ok else " UNVERIFIED")
            rows.append((key, label, rate, (r.get("throughput") or {}).get("unit") or "B/s", ci))
    return rows


def compare(args):
    with open(args.torch) as f:
        torch_res = json.load(f)
    tmap = {}
    for r in torch_res["results"]:
        if r["op"] == "matmul":
            tmap[("matmul", r["dtype"], tuple(r["shape"]))] = r
        elif r["op"] == "attention":
            # The best SDPA backend on the shape is what gpuvet's kernels are held against.
            key = attention_key(*r["shape"])
            if key not in tmap or r["rate"] > tmap[key]["rate"]:
                tmap[key] = r
        else:
            tmap[("copy", "f32", r["bytes"])] = r
    rows = gpuvet_rows(args.gpuvet)
    print()
    print(f"{'workload':52} {'gpuvet':>11} {'±CI95':>7} {'PyTorch':>11} {'±CI95':>7} {'gpuvet/torch':>12}")
    for key, label, rate, unit, ci in rows:
        t = tmap.get(key) if key else None
        scale = 1e12 if unit != "B/s" else 1e9
        u = "T" if unit != "B/s" else "GB/s"
        g = f"{rate / scale:9.1f}{'' if u == 'GB/s' else ' T'}"
        cis = f"{ci * 100:5.2f}%" if ci is not None else "   —"
        if t:
            tci = (t["ci95_high_s"] - t["ci95_low_s"]) / 2 / t["median_s"]
            ratio = rate / t["rate"]
            print(f"{label:52} {g:>11} {cis:>7} {t['rate'] / scale:9.1f}   {tci * 100:5.2f}% {ratio:11.3f}x"
                  + (f"  vs {t['api']}" if t.get("op") == "attention" else ""))
        else:
            print(f"{label:52} {g:>11} {cis:>7} {'—':>11} {'':>7} {'':>12}")
    print("(matmul and prefill attention in TFLOP/s or TOP/s, copy and decode attention in GB/s "
          "(copy counts read + write); attention is compared with the fastest SDPA backend; "
          "CI95 = half-width of the 95% interval of the median, relative)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("--size", type=int, default=8192)
    m.add_argument("--copy-bytes", type=int, default=4 << 30)
    m.add_argument("--no-attention", action="store_true", help="skip the SDPA attention shapes")
    c = sub.add_parser("compare")
    c.add_argument("--torch", required=True)
    c.add_argument("gpuvet", nargs="+")
    args = ap.parse_args()
    return measure(args) if args.cmd == "measure" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
