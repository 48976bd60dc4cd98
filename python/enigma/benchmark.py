"""Small timing helpers (all times in microseconds)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass
class BenchResult:
    label: str
    samples_us: list = field(default_factory=list)
    warmup: int = 0

    @property
    def n(self) -> int:
        return len(self.samples_us)

    @property
    def min_us(self) -> float:
        return min(self.samples_us) if self.samples_us else 0.0

    @property
    def max_us(self) -> float:
        return max(self.samples_us) if self.samples_us else 0.0

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_us) if self.samples_us else 0.0

    @property
    def mean_us(self) -> float:
        return statistics.fmean(self.samples_us) if self.samples_us else 0.0

    @property
    def stdev_us(self) -> float:
        return statistics.stdev(self.samples_us) if self.n >= 2 else 0.0

    def __repr__(self) -> str:
        return (f"BenchResult({self.label!r}, n={self.n}, median={self.median_us:.2f}us, "
                f"min={self.min_us:.2f}us, max={self.max_us:.2f}us)")


def _check(repeat, warmup):
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    if warmup < 0:
        raise ValueError("warmup must be >= 0")


def bench(fn, *args, repeat=50, warmup=5, label=None, **kwargs) -> BenchResult:
    """Wall-clock time of ``fn(*args, **kwargs)``."""
    _check(repeat, warmup)
    for _ in range(warmup):
        fn(*args, **kwargs)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(*args, **kwargs)
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    return BenchResult(label or getattr(fn, "__name__", "fn"), samples, warmup)


def bench_gpu(prepared, grid, threads, *, repeat=50, warmup=5, label=None) -> BenchResult:
    """Device time of ``prepared.dispatch_timed`` (milliseconds) in microseconds."""
    _check(repeat, warmup)
    for _ in range(warmup):
        prepared.dispatch(grid, threads)
    samples = [float(prepared.dispatch_timed(grid, threads)) * 1000.0 for _ in range(repeat)]
    return BenchResult(label or getattr(prepared, "kernel_name", "") or "prepared", samples, warmup)


def format_bench_result(r: BenchResult, *, throughput_gbps=None) -> str:
    parts = [r.label, f"n={r.n}", f"median={r.median_us:.2f}us", f"min={r.min_us:.2f}us", f"max={r.max_us:.2f}us"]
    if throughput_gbps is not None:
        parts.append(f"BW={throughput_gbps:.2f}GB/s")
    return "  ".join(parts)


__all__ = ["BenchResult", "bench", "bench_gpu", "format_bench_result"]
