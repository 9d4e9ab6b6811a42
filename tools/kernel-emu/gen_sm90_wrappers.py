"""Writes the generated wgmma wrappers into kernels/gpuvet_sm90.cuh, between the markers
`// BEGIN GENERATED WGMMA` and `// END GENERATED WGMMA`. A wgmma with N = 256 names 128
accumulator registers in one asm statement: written by hand, one operand number off is an
error only a GPU would show; generated, the numbering is checked once here.

  python3 tools/kernel-emu/gen_sm90_wrappers.py          rewrite the header
  python3 tools/kernel-emu/gen_sm90_wrappers.py --check  fail if the header is stale (CI)
"""
import os
import sys

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kernels", "gpuvet_sm90.cuh")
BEGIN, END = "// BEGIN GENERATED WGMMA", "// END GENERATED WGMMA"


def regs(n, start=0):
    return ", ".join(f"%{i}" for i in range(start, start + n))


def cons(n):
    return ", ".join(f'"+f"(d[{i}])' for i in range(n))


def wrappers():
    out = []
    for N in (64, 128, 256):
        R = N // 2
        # bf16 and f16 differ only in the type named in the instruction: one macro per N,
        # instantiated for each (`#TY` spells it inside the PTX string, `##` in the name).
        body = f"""template <int TRANS_B>
__device__ __forceinline__ void wgmma_ss_##TY##_n{N}(float (&d)[{R}], u64 da, u64 db, int scale_d) {{
    asm volatile(
        "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{R + 2}, 0;\\n"
        "wgmma.mma_async.sync.aligned.m64n{N}k16.f32." #TY "." #TY " "
        "{{{regs(R)}}}, %{R}, %{R + 1}, p, 1, 1, 0, %{R + 3};\\n}}\\n"
        : {cons(R)}
        : "l"(da), "l"(db), "r"(scale_d), "n"(TRANS_B)
        : "memory");
}}
template <int TRANS_B>
__device__ __forceinline__ void wgmma_rs_##TY##_n{N}(float (&d)[{R}], const u32 (&a)[4], u64 db, int scale_d) {{
    asm volatile(
        "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{R + 5}, 0;\\n"
        "wgmma.mma_async.sync.aligned.m64n{N}k16.f32." #TY "." #TY " "
        "{{{regs(R)}}}, {{%{R}, %{R + 1}, %{R + 2}, %{R + 3}}}, %{R + 4}, p, 1, 1, %{R + 6};\\n}}\\n"
        : {cons(R)}
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d), "n"(TRANS_B)
        : "memory");
}}"""
        macro = " \\\n".join(body.split("\n"))
        out.append(f"""// D[64x{N}] (+)= A[64x16] * B[16x{N}], TY (bf16 or f16) in, f32 accumulate: wgmma_ss_TY_n{N}
// with both operands in shared memory (descriptors), wgmma_rs_TY_n{N} with A from registers
// (per warp w: rows 16w..16w+15 in the mma.sync m16n8k16 A layout). TRANS_B = 1: B is MN-major
// (N contiguous); 0: K-major. scale_d = 0 overwrites D.
#define GV_WGMMA_16BIT_N{N}(TY) \\
{macro}
GV_WGMMA_16BIT_N{N}(bf16)
GV_WGMMA_16BIT_N{N}(f16)
""")
        out.append(f"""// D[64x{N}] (+)= A[64x32] * B[32x{N}], fp8 e4m3 in, f32 accumulate, both K-major in shared memory.
__device__ __forceinline__ void wgmma_ss_e4m3_n{N}(float (&d)[{R}], u64 da, u64 db, int scale_d) {{
    asm volatile(
        "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{R + 2}, 0;\\n"
        "wgmma.mma_async.sync.aligned.m64n{N}k32.f32.e4m3.e4m3 "
        "{{{regs(R)}}}, %{R}, %{R + 1}, p, 1, 1;\\n}}\\n"
        : {cons(R)}
        : "l"(da), "l"(db), "r"(scale_d)
        : "memory");
}}
""")
    return "\n".join(out)


def main():
    text = open(HEADER).read()
    head, rest = text.split(BEGIN + "\n", 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + wrappers() + END + tail
    if "--check" in sys.argv:
        if new != text:
            sys.exit("kernels/gpuvet_sm90.cuh: the generated wgmma wrappers are stale; run tools/kernel-emu/gen_sm90_wrappers.py")
        print("gpuvet_sm90.cuh wrappers: up to date")
        return
    open(HEADER, "w").write(new)


if __name__ == "__main__":
    main()
