"""The printed run summary shows each stage's wall time and peak resident memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from osteo.memory import peak_memory_mb
from osteo.pipeline.context import StageRecord
from osteo.pipeline.runner import RunResult
from osteo.pipeline.summary import format_run_summary


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_peak_memory_is_a_high_water_mark_in_megabytes():
    own, children = peak_memory_mb()
    assert own >= _current_rss_mb() - 1
    ballast = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MB resident now
    now = _current_rss_mb()
    again, _ = peak_memory_mb()
    assert again >= now - 1 and again >= own  # covers the ballast, never falls
    assert again < now + 64_000  # megabytes, not kilobytes or bytes
    assert children is not None and children >= 0
    del ballast


def test_summary_prints_time_and_peak_memory_per_stage():
    stages = [
        StageRecord("data", "ran", 1.25, peak_rss_mb=412.4, children_peak_rss_mb=0.0),
        StageRecord("roi", "reused", 0.5, peak_rss_mb=1536.0, children_peak_rss_mb=305.7),
        StageRecord("radiomics", "skipped", 0.0),  # no figures recorded (an older stages.json)
    ]
    text = format_run_summary(RunResult(Path("runs/x"), stages))
    header, data, roi, radiomics = text.splitlines()[2:6]
    assert "time" in header and "peak RSS" in header and "workers" in header
    assert "1.2s" in data and "412 MB" in data
    assert "0.5s" in roi and "1536 MB" in roi and "306 MB" in roi
    assert "MB" not in radiomics and "-" in radiomics
