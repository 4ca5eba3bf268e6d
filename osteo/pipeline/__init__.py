"""The stages of one run, each cached by the hash of what it depends on.

``run_pipeline(cfg)``: data -> segmentation -> roi [-> radiomics -> classifier -> evaluation].
Each stage records in ``stages.json`` whether it ran or was reused, its wall time, its cache
key and its own figures.
"""

from osteo.pipeline.runner import RunResult, run_pipeline

__all__ = ["RunResult", "run_pipeline"]
