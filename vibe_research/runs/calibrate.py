"""How fast the machine is right now: a fixed micro-benchmark each run takes before it trains,
outside its budget, in its own sandboxed process with the run's thread settings.

A wall-clock budget turns machine load into bpb (a browser, thermal throttling, another job),
so every run records this score and the load average at its start and end; two sides of one
comparison taken at different speeds are flagged and rerun side by side (research/loop).

    python -m vibe_research.runs.calibrate      prints one Calibration JSON line

The benchmark is the same code on every run: fp32 matrix products of a fixed size after a
warm-up, counted as GFLOP/s in SLICES slices of MEASURE_S / SLICES each; the score is the median
slice, so one descheduling or a timer tick moves it less than it moves a mean. Measured on the
2-core development machine, 8 fresh processes each, alternating: the median of ten 0.1 s slices
varied by 2.4% (coefficient of variation) against 3.6% for one 1 s mean.
"""

import json
import statistics
import sys
import time

from pydantic import BaseModel, Field

CALIBRATION_VERSION = 2  # 2: the median of slices (1 was a mean over MEASURE_S)
SIZE = 512  # n of the n x n matrix product: big enough for BLAS to use every thread
WARMUP = 5  # products before timing: threads spun up, caches warm
MEASURE_S = 1.0  # the whole measurement, a second outside each run's budget
SLICES = 10


class Calibration(BaseModel):
    v: int = CALIBRATION_VERSION
    gflops: float = Field(description="fp32 matrix products per second, in GFLOP/s")
    threads: int
    load_start: float | None = Field(default=None, description="1-minute load average at start")
    load_end: float | None = Field(default=None, description="1-minute load average at the end")


def measure() -> Calibration:
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(SIZE, SIZE, generator=generator)
    b = torch.randn(SIZE, SIZE, generator=generator)
    for _ in range(WARMUP):
        torch.mm(a, b)
    rates = []
    for _ in range(SLICES):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < MEASURE_S / SLICES:
            torch.mm(a, b)
            count += 1
        rates.append(2 * SIZE**3 * count / elapsed / 1e9)
    return Calibration(gflops=statistics.median(rates), threads=torch.get_num_threads())


def main() -> int:
    print(json.dumps(measure().model_dump(exclude_none=True)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
