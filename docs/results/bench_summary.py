#!/usr/bin/env python3
"""Summarise liquidlab bench results (metrics.json of each cell of a bench run).

Usage: bench_summary.py RESULTS_DIR/EXPERIMENT.bench ...

Per cell: one row per length (peak memory, median time, time per token, the
attention stage's MFLOP/token and GFLOP/s from the bench notes) and a summary
line: the growth exponent (least-squares slope of log time against log length
over all lengths, as `liquidlab bench` and causal.GrowthExponent compute it),
the slope between 8k and 32k, time per token at 32k over 4k, and peak memory
at 32k over 4k.
"""
import glob, json, math, os, re, sys

def slope(xs, ys):
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    n = len(lx)
    sx, sy = sum(lx), sum(ly)
    sxx, sxy = sum(x * x for x in lx), sum(x * y for x, y in zip(lx, ly))
    return (n * sxy - sx * sy) / (n * sxx - sx * sx)

def main():
    summary = []
    for run in sys.argv[1:]:
        for mj in sorted(glob.glob(os.path.join(run, "*", "metrics.json"))):
            cell = os.path.basename(os.path.dirname(mj))
            pat = re.search(r"pattern=([a-z]+)", cell)
            name = pat.group(1) if pat else cell
            rows = sorted(json.load(open(mj))["bench"], key=lambda r: r["seq_len"])
            if not rows:
                continue
            print(f"\n**{name}** ({cell})\n")
            print("| length | peak memory GB | time/batch s (median ± spread, n) | µs/token | attention MFLOP/token | attention GFLOP/s |")
            print("|---:|---:|---:|---:|---:|---:|")
            by = {}
            for r in rows:
                S, t = r["seq_len"], r["median_s"]
                by[S] = r
                mf = gf = "—"
                for note in r.get("notes", []):
                    m = re.match(r"attention ([0-9.e+]+) MFLOP/token .*: ([0-9.]+) GFLOP/s", note)
                    if m:
                        mf, gf = m.group(1), m.group(2)
                print(f"| {S} | {r['peak_mem_gb']:.3f} | {t:.3f} ± {r['spread_s']:.3f} ({len(r['times_s'])}) | {1e6 * t / S:.1f} | {mf} | {gf} |")
            Ls = [r["seq_len"] for r in rows]
            ts = [r["median_s"] for r in rows]
            line = {"pattern": name, "lengths": f"{Ls[0]}–{Ls[-1]}", "exp_all": slope(Ls, ts)}
            if 8192 in by and 32768 in by:
                line["exp_8k_32k"] = slope([8192, 16384, 32768], [by[s]["median_s"] for s in (8192, 16384, 32768)])
            if 4096 in by and 32768 in by:
                line["tpt_32k_over_4k"] = (by[32768]["median_s"] / 32768) / (by[4096]["median_s"] / 4096)
                line["mem_32k_over_4k"] = by[32768]["peak_mem_gb"] / by[4096]["peak_mem_gb"]
            summary.append(line)
    print("\n| pattern | lengths | exponent (all lengths) | exponent 8k–32k | time/token 32k ÷ 4k | peak memory 32k ÷ 4k |")
    print("|:--|:--|---:|---:|---:|---:|")
    f = lambda d, k: f"{d[k]:.2f}" if k in d else "—"
    for d in summary:
        print(f"| {d['pattern']} | {d['lengths']} | {f(d, 'exp_all')} | {f(d, 'exp_8k_32k')} | {f(d, 'tpt_32k_over_4k')} | {f(d, 'mem_32k_over_4k')} |")

if __name__ == "__main__":
    main()
