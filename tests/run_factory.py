"""One small trained run, shared by the prediction and robustness tests (tests/conftest.py).

The settings are as small as a real run gets: reference masks instead of a trained U-Net,
3 epochs, 48-pixel hip crops, a light radiomics parameter file (the original image only,
a few first-order and GLCM features), and the auxiliary T-score output so prediction
reports it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fusion_all.yaml"

# Everything that decides the trained model; the resume test reuses it with another name.
TRAINING_OVERRIDES = (
    "segmentation.masks=manifest",
    "train.max_epochs=3",
    "train.crop_spacing_mm=2.3",
    "train.batch_size=8",
    "model.aux_tscore_weight=0.5",
    "data.split.val_fraction=0.3",
    "train.n_bootstrap=50",
    "trainer.enable_progress_bar=false",
    "radiomics.workers=0",  # 40 studies: starting worker processes costs more than it saves
)
LIGHT_RADIOMICS = """\
imageType:
  Original: {}
featureClass:
  firstorder: [10Percentile, 90Percentile, Entropy, Kurtosis, Skewness]
  glcm: [Contrast, Correlation, Idm, JointEntropy]
setting:
  binCount: 32
  label: 1
  additionalInfo: false
"""


@dataclass
class TinyRun:
    root: Path  # the folder fit ran in
    run_dir: Path
    cache_dir: Path
    manifest: Path
    stdout: str
    stderr: str

    def fit_command(self, *overrides: str) -> list[str]:
        return fit_command(self.root, self.manifest, *overrides)


def fit_env() -> dict[str, str]:
    return {**os.environ, "WANDB_SILENT": "true", "MPLBACKEND": "Agg"}


def fit_command(root: Path, manifest: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "tools" / "fit.py"),
        "--config",
        str(CONFIG),
        f"data.manifest={manifest}",
        f"output_dir={root / 'runs'}",
        f"cache_dir={root / 'cache'}",
        f"radiomics.params={root / 'radiomics_light.yaml'}",
        *TRAINING_OVERRIDES,
        *overrides,
    ]


def train_tiny_run(root: Path, manifest: Path) -> TinyRun:
    root.mkdir(parents=True, exist_ok=True)
    (root / "radiomics_light.yaml").write_text(LIGHT_RADIOMICS)
    result = subprocess.run(
        fit_command(root, manifest, "name=shared"),
        capture_output=True,
        text=True,
        timeout=900,
        env=fit_env(),
        cwd=root,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return TinyRun(
        root, root / "runs" / "shared", root / "cache", manifest, result.stdout, result.stderr
    )


def load_tool():
    """``tools/predict.py`` as a module (its ``main`` and exit codes), for the CLI tests."""
    spec = importlib.util.spec_from_file_location("predict_tool", ROOT / "tools" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
