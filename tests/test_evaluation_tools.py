"""Smoke tests of tools/evaluate.py and tools/compare.py in subprocesses on fabricated runs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from evaluation_factory import make_readers, make_runs

ROOT = Path(__file__).resolve().parents[1]


def run_tool(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / name), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation_tools")
    cohort, run_dirs = make_runs(root / "runs")
    readers = make_readers(cohort, root / "readers.csv")
    return root, run_dirs, readers


def test_evaluate_tool_writes_metrics_and_prints_the_summary(workspace):
    root, run_dirs, _ = workspace
    result = run_tool("evaluate.py", "--run", run_dirs[1], "--n-bootstrap", "50", cwd=root)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dirs[1] / "metrics.json").read_text())
    for split in ("val", "internal_test", "external_test"):
        assert f"{metrics[split]['auc']:.3f}" in result.stdout
        assert split in result.stdout
    assert (run_dirs[1] / "report.md").is_file()
    assert (run_dirs[1] / "roc_external_test.png").is_file()


def load_tool(name: str):
    """Import a tool script as a module, to call its main() in-process (no interpreter start)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_tool_target_sensitivity(workspace, capsys):
    _, run_dirs, _ = workspace
    evaluate = load_tool("evaluate")
    assert (
        evaluate.main(
            [
                "--run",
                str(run_dirs[0]),
                "--threshold-method",
                "sensitivity",
                "--target-sensitivity",
                "0.95",
                "--n-bootstrap",
                "0",
            ]
        )
        == 0
    )
    assert json.loads((run_dirs[0] / "metrics.json").read_text())["val"]["sensitivity"] >= 0.95
    with pytest.raises(SystemExit) as usage:
        evaluate.main(["--run", str(run_dirs[0]), "--threshold-method", "sensitivity"])
    assert usage.value.code == 2 and "--target-sensitivity" in capsys.readouterr().err


def test_compare_tool_writes_the_table(workspace):
    root, run_dirs, readers = workspace
    missing = run_tool("compare.py", *run_dirs, "--out", "cmp", cwd=root)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "primary model 'fusion_all' is not among the runs" in missing.stderr
    result = run_tool(
        "compare.py",
        *run_dirs,
        "--readers",
        readers,
        "--out",
        "cmp",
        "--primary",
        "deep_clinical",
        "--n-bootstrap",
        "100",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    assert "| Model | Internal test AUC (95% CI) | difference (CI) | P (Holm) |" in result.stdout
    for name in (
        "comparison.md",
        "comparison.csv",
        "roc_internal_test.png",
        "roc_external_test.png",
        "reliability.png",
    ):
        assert (root / "cmp" / name).is_file(), name
    assert "Reader: R2" in (root / "cmp" / "comparison.md").read_text()


def test_tools_report_bad_inputs_without_a_traceback(workspace, tmp_path):
    root, run_dirs, _ = workspace
    missing = run_tool("evaluate.py", "--run", tmp_path / "absent", cwd=root)
    assert missing.returncode == 1 and "run folder not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_compare_tool_names_a_bad_readers_file(workspace, tmp_path, capsys):
    _, run_dirs, _ = workspace
    bad_readers = tmp_path / "readers.csv"
    bad_readers.write_text("study_id,reader,score\nnot-a-study,R1,3\n")
    compare = load_tool("compare")
    code = compare.main(
        [*map(str, run_dirs), "--readers", str(bad_readers), "--out", str(tmp_path / "cmp")]
    )
    err = capsys.readouterr().err
    assert code == 1 and str(bad_readers) in err and "not-a-study" in err
