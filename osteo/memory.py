"""Peak resident memory of this process and of its children, from ``resource.getrusage``.

``ru_maxrss`` is a high-water mark since the process started (never a current figure), in
kilobytes on Linux and bytes on macOS. For children it is the largest peak of any single child
process this one has waited for, not a sum. psutil is not a dependency; ``resource`` is in the
standard library everywhere but Windows, where these figures are ``None``.
"""

from __future__ import annotations

import sys

__all__ = ["peak_memory_mb"]


def peak_memory_mb() -> tuple[float | None, float | None]:
    """(this process, its largest waited-for child) peak resident memory in MB."""
    try:
        import resource
    except ImportError:
        return None, None
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return round(own, 1), round(children, 1)
