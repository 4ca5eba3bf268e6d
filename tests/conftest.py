import os
import sys
import tempfile
from pathlib import Path

import pytest

# Test helpers (tests/dicom_factory.py ...) import as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]

# Tests never create or read the user's pseudonym key (~/.config/osteo/id_key): one key file
# per test session, inherited by the CLI subprocesses the tests start.
if "OSTEO_ID_KEY" not in os.environ:
    os.environ.setdefault(
        "OSTEO_ID_KEY_FILE", str(Path(tempfile.mkdtemp(prefix="osteo-key-")) / "id_key")
    )


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """The synthetic cohort at its tiny preset, made once per test session; its manifest."""
    from osteo.data.synthetic import generate_cohort

    folder = tmp_path_factory.mktemp("tiny_cohort")
    generate_cohort(folder, preset="tiny", seed=0, workers=1, progress=False)
    return folder / "manifest.csv"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_cohort):
    """A trained deep+texture+clinical run on the tiny cohort (tests/run_factory.py)."""
    from run_factory import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("tiny_run"), tiny_cohort)


def pytest_collection_modifyitems(items):
    """A test that needs the shared trained run (a minute or more of training, once per
    session) belongs to the slow lane: ``pytest -m "not slow"`` leaves it out."""
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
