"""Small radiograph-like images with textured ROIs, and helpers that run in child processes
for the radiomics tests (spawned children import this module by name)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

HEIGHT, WIDTH = 96, 128

# ROI boxes (row0, col0, row1, col1) with >= 12 px of context on every side at 1 mm.
BOXES = {
    ("right", "neck"): (20, 20, 38, 38),
    ("right", "cortex"): (56, 22, 70, 40),
    ("left", "neck"): (20, 90, 38, 108),
    ("left", "cortex"): (56, 88, 70, 106),
}


def textured_radiograph(seed: int) -> np.ndarray:
    """Smooth bone-like background plus blurred noise texture; float32, arbitrary grey scale."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, HEIGHT)[:, None]
    cols = np.linspace(0, 1, WIDTH)[None, :]
    background = 800 + 300 * np.sin(np.pi * cols) + 100 * rows
    texture = gaussian_filter(rng.normal(size=(HEIGHT, WIDTH)), 1.2) * 150
    return (background + texture).astype(np.float32)


def write_cohort(folder: Path, n: int, first_seed: int = 0) -> list:
    """``n`` studies as .npy files, returned as ``StudyItem``s with the standard boxes."""
    from osteo.radiomics import StudyItem

    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        path = folder / f"study{first_seed + i:03d}.npy"
        np.save(path, textured_radiograph(first_seed + i))
        items.append(StudyItem(f"S{first_seed + i:03d}", path, dict(BOXES)))
    return items


def fill_store(params_path: str, store_root: str, items: list, start, results) -> None:
    """Child process: wait for the sibling, fill the store in-process, send the features back."""
    from osteo.radiomics import FeatureStore, RadiomicsExtractor, extract_many

    store = FeatureStore(store_root, RadiomicsExtractor(params_path))
    start.wait()  # both children start extracting at the same moment
    result = extract_many(items, store, workers=0, progress=False)
    results.put((os.getpid(), result.table.features.numpy(), result.n_extracted))


def crash_between_write_and_rename(params_path: str, store_root: str, item) -> None:
    """Child process: write an entry's temporary file, then die (SIGKILL) before the rename,
    as a killed DDP rank or an out-of-memory kill would."""
    import osteo.radiomics.store as store_module
    from osteo.radiomics import FeatureStore, RadiomicsExtractor, extract_many

    def killed(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    store_module.os.replace = killed
    store = FeatureStore(store_root, RadiomicsExtractor(params_path))
    extract_many([item], store, workers=0, progress=False)
