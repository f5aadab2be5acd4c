#!/usr/bin/env python3
"""Splits the CPU samples of `liquidlab bench -cpuprofile P` runs by forward step.

Usage: scripts/pprof-steps.py P [P ...]   (needs `go` on PATH; profiles are summed)

Only samples labelled part=bench-run count; of those, the model's own labels
(step=embed|flows|ode|attention|liquid|head, see framework/model/chunk.go) say
which step a sample belongs to, and a cblas_sgemm frame marks a matrix product.
Samples of Run outside every step (the run's buffers, the head's weight packed
once per change) are counted apart; model construction and initialisation,
the runner and the bench's bookkeeping are left out. The profile includes the
bench's warm-up run.
"""
import re
import subprocess
import sys
from collections import defaultdict


def traces(path):
    out = subprocess.run(["go", "tool", "pprof", "-traces", path],
                         capture_output=True, text=True, check=True).stdout
    for block in out.split("-----------+-------------------------------------------------------")[1:]:
        labels, frames, secs = {}, [], 0.0
        for line in block.strip("\n").split("\n"):
            m = re.match(r"\s+([\d.]+)(ms|s)\s+(.*)$", line)
            if m:
                secs = float(m.group(1)) * (1 if m.group(2) == "s" else 1e-3)
                frames.append(m.group(3).strip())
                continue
            m = re.match(r"\s+(\w+):\s+(\S+)$", line)
            if m and not frames:
                labels[m.group(1)] = m.group(2)
            elif line.strip():
                frames.append(line.strip())
        yield labels, frames, secs


def category(labels, frames):
    if labels.get("part") != "bench-run":
        return None
    step = labels.get("step")
    sgemm = any("cblas_sgemm" in f for f in frames)
    if step == "head":
        if sgemm or any("num/bf16.Gemm" in f for f in frames):
            return "output head, matrix product"
        return "output head, softmax and consumer"
    if step in ("flows", "ode", "attention", "liquid"):
        if sgemm:
            return "the stages' matrix products"
        return {"ode": "ODE per-token math", "flows": "flows per-token math"}.get(step, "attention, liquid cell")
    if step == "embed":
        return "embedding lookup"
    if any("model.(*Model).Run" in f for f in frames):
        return "Run outside the steps (buffers, head weight packing)"
    return None


def main():
    total = defaultdict(float)
    for path in sys.argv[1:]:
        for labels, frames, secs in traces(path):
            c = category(labels, frames)
            if c:
                total[c] += secs
    s = sum(total.values())
    for k in sorted(total, key=lambda k: -total[k]):
        print(f"{k:55s} {total[k]:7.2f} s {100 * total[k] / s:5.1f}%")
    print(f"{'CPU samples of the runs':55s} {s:7.2f} s")


if __name__ == "__main__":
    main()
