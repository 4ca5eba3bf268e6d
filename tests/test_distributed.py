"""Scale-out: the main command as a two-process DDP job launched by torchrun, on CPU.

torchrun starts both ranks before any code runs, so the pipeline joins the process group at
start-up (``osteo.pipeline.distributed.start_distributed``): rank zero writes the run folder, the
radiomics extraction is split across the ranks into the shared feature store, and the job
exits 0 (a gloo group left alive at exit would abort it with code 134).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    # A fixed port would collide with another test session on the same machine.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_process_ddp_on_cpu(tmp_path, tiny_cohort):
    env = {**os.environ, "WANDB_SILENT": "true", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        str(ROOT / "tools" / "fit.py"),
        "--config",
        str(ROOT / "configs" / "fusion_all.yaml"),
        f"data.manifest={tiny_cohort}",
        f"output_dir={tmp_path / 'runs'}",
        f"cache_dir={tmp_path / 'cache'}",
        f"radiomics.params={ROOT / 'configs' / 'radiomics' / 'default.yaml'}",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.enable_progress_bar=false",
        "segmentation.masks=manifest",
        "train.max_epochs=2",
        "train.crop_spacing_mm=2.3",
        "train.batch_size=8",
        "data.split.val_fraction=0.3",
        "train.n_bootstrap=50",
        "radiomics.workers=1",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    run = tmp_path / "runs" / "fusion_all"
    for name in ("config.yaml", "splits.csv", "rois.csv", "predictions.csv", "metrics.json"):
        assert (run / name).is_file(), name
    predictions = pd.read_csv(run / "predictions.csv")
    assert not predictions["study_id"].duplicated().any()  # rank zero predicts, unpadded
    assert set(predictions["split"]) == {"val", "internal_test", "external_test"}
    # Only rank zero prints the summary.
    assert result.stdout.count("Run folder:") == 1

    stages = json.loads((run / "stages.json").read_text())["stages"]
    radiomics = stages["radiomics"]
    assert radiomics["status"] == "ran"
    by_rank = radiomics["figures"]["extracted_by_rank"]
    # Each rank extracted its own half into the shared store; together, every study once.
    assert len(by_rank) == 2 and all(n > 0 for n in by_rank)
    assert sum(by_rank) == radiomics["figures"]["n_studies"]
    assert stages["classifier"]["status"] == "ran"
