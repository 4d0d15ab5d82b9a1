"""Memory of a process as Linux reports it, for the benchmarks and the memory checks of the tests."""

from __future__ import annotations

from pathlib import Path


def proc_memory_mb(field: str, pid: int | str = "self") -> float | None:
    """A memory line of /proc/PID/status (VmRSS: resident now, VmHWM: peak) in MB; None if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries the parent's
    high-water mark across fork and exec, so a child of a big process would report the parent's."""
    peak = proc_memory_mb("VmHWM")
    if peak is None:
        raise RuntimeError("/proc/self/status has no VmHWM line (Linux only)")
    return peak
