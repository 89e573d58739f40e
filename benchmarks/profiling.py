"""Where one call's GPU time goes: torch's profiler around a single call, summarised for a benchmark's report."""

import time
from collections.abc import Callable

import torch


def profile_call(call: Callable[[], object], top: int = 12) -> dict:
    """Run ``call`` once to warm up, then once under torch's profiler: its wall time (ms), the CUDA kernels launched
    and their total time (ms), and the ``top`` kernels and host-side ops by time."""
    from torch.profiler import ProfilerActivity, profile

    call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - start) * 1e3
    events = profiler.key_averages()
    kernels = [event for event in events if event.device_time_total > 0 and event.device_type.name == "CUDA"]
    host = sorted(events, key=lambda event: -event.self_cpu_time_total)[:top]
    return {
        "wall_ms": wall_ms,
        "kernel_launches": sum(event.count for event in kernels),
        "kernel_ms": sum(event.device_time_total for event in kernels) / 1e3,
        "top_kernels": [
            {"kernel": event.key[:120], "ms": event.device_time_total / 1e3, "calls": event.count}
            for event in sorted(kernels, key=lambda event: -event.device_time_total)[:top]
        ],
        "top_host_ops": [
            {"op": event.key[:120], "self_ms": event.self_cpu_time_total / 1e3, "calls": event.count} for event in host
        ],
    }


def print_profile(profile: dict) -> None:
    """The summary of ``profile_call`` as indented lines under a benchmark's table row."""
    print(
        f"  profile: {profile['wall_ms']:.1f} ms wall, {profile['kernel_launches']} kernels taking "
        f"{profile['kernel_ms']:.1f} ms on the GPU"
    )
    for row in profile["top_kernels"]:
        print(f"  {row['ms']:9.2f} ms x{row['calls']:<5d} {row['kernel'][:90]}")
    for row in profile["top_host_ops"]:
        print(f"  host {row['self_ms']:9.2f} ms x{row['calls']:<5d} {row['op'][:85]}")
