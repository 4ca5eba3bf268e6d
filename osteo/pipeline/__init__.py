"""What joins the stages: the runner, the run context, distributed helpers, resume, W&B.

``run_pipeline(cfg)``: data -> segmentation -> roi [-> radiomics -> classifier -> evaluation].
Each stage records in ``stages.json`` whether it ran or was reused, its wall time, its peak
memory, its cache key and its own figures. The stage packages import
``osteo.pipeline.context`` (and the other helpers) themselves, so this package's ``__init__``
imports the runner only when asked: importing it eagerly would import every stage while a
stage is itself being imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunResult", "run_pipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from osteo.pipeline import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
