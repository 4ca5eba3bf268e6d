"""Stage 3, ROI placement: femur geometry and the neck and medial-cortex boxes of each hip
(``geometry``), quality flags, review overlays (``overlay``) and the stage runner with its
per-mask cache (``stage``)."""
