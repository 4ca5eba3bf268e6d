"""Pseudonyms, the key, CSV formula cells, run names and config resolvers, W&B settings."""

from __future__ import annotations

import hashlib
import stat

import pandas as pd
import pytest

from osteo import privacy
from osteo.config import ConfigError, load_config, redacted_config, save_config
from osteo.data.manifest import hash_identifier, read_splits, write_splits
from osteo.tables import neutralise_formulas, write_csv


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "osteo" / "id_key"
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.setenv(privacy.KEY_FILE_ENV, str(path))
    privacy.reset_key_cache()
    yield path
    privacy.reset_key_cache()


def test_key_file_created_on_first_use_with_mode_0600(key_file):
    assert not key_file.exists()
    first = privacy.pseudonym("1234567", "patient")
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    privacy.reset_key_cache()
    assert privacy.pseudonym("1234567", "patient") == first  # the same key is read back


def test_pseudonym_is_keyed_not_the_old_public_salt(key_file):
    mrn = "1234567"
    old = hashlib.sha256(f"osteo:{mrn}".encode()).hexdigest()[:16]  # reversible by brute force
    assert hash_identifier(mrn) != old
    key_file.write_text("b" * 64 + "\n")
    privacy.reset_key_cache()
    other = hash_identifier(mrn)
    key_file.write_text("c" * 64 + "\n")
    privacy.reset_key_cache()
    assert hash_identifier(mrn) != other  # a different key, a different pseudonym
    assert len(other) == 16 and int(other, 16) >= 0


def test_key_from_environment_and_too_short_key(key_file, monkeypatch):
    monkeypatch.setenv(privacy.KEY_ENV, "k" * 32)
    privacy.reset_key_cache()
    a = privacy.pseudonym("S1", "study")
    assert not key_file.exists()  # an environment key never creates a file
    monkeypatch.setenv(privacy.KEY_ENV, "short")
    privacy.reset_key_cache()
    with pytest.raises(privacy.IdentifierKeyError, match="at least 16"):
        privacy.pseudonym("S1", "study")
    monkeypatch.setenv(privacy.KEY_ENV, "k" * 32)
    privacy.reset_key_cache()
    assert privacy.pseudonym("S1", "study") == a


def test_study_and_patient_pseudonyms_differ(key_file):
    assert privacy.pseudonym("X1", "study") != privacy.pseudonym("X1", "patient")


def test_world_readable_key_file_warns(key_file):
    privacy.pseudonym("x")
    key_file.chmod(0o644)
    privacy.reset_key_cache()
    with pytest.warns(UserWarning, match="chmod 600"):
        privacy.identifier_key()


def test_policy_redacts_paths_and_ids(tmp_path, key_file):
    manifest = pd.DataFrame(
        {
            "study_id": ["ACC998877"],
            "patient_id": ["MRN1234567"],
            "image_path": [str(tmp_path / "DOE_JANE" / "ACC998877.dcm")],
            "mask_path": [None],
        }
    )
    policy = privacy.IdentifierPolicy(clear=False)
    policy.learn(manifest, tmp_path / "DOE_JANE" / "manifest.csv")
    text = f"{manifest['image_path'][0]}: not a readable DICOM file (ACC998877)"
    redacted = policy.message(text, "ACC998877")
    assert "ACC998877" not in redacted and "DOE_JANE" not in redacted
    assert policy.study("ACC998877") == privacy.pseudonym("ACC998877", "study")
    assert privacy.IdentifierPolicy(clear=True).message(text, "ACC998877") == text


def test_splits_written_with_pseudonyms_and_read_back(tmp_path, key_file):
    from osteo.data.manifest import apply_splits

    manifest = pd.DataFrame({"study_id": ["S1", "S2"], "patient_id": ["P1", "P2"]})
    split = pd.Series(["train", "val"])
    path = write_splits(manifest, split, tmp_path / "splits.csv")
    text = path.read_text()
    assert "S1" not in text and "P1" not in text
    assert apply_splits(manifest, read_splits(path)).tolist() == ["train", "val"]
    clear = write_splits(manifest, split, tmp_path / "clear.csv", clear_ids=True)
    assert "S1" in clear.read_text() and "P1" not in clear.read_text()


# --------------------------------------------------------------------------- CSV injection


def test_formula_cells_neutralised_numbers_kept(tmp_path):
    table = pd.DataFrame(
        {
            "study_id": ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "S1", "-2.5"],
            "tscore": [-2.7, 1.0, 0.0, -1.0, 2.0, -3.0],
        }
    )
    path = write_csv(table, tmp_path / "t.csv")
    back = pd.read_csv(path, dtype={"study_id": str})
    assert back["study_id"].tolist() == [
        "'=cmd|' /C calc'!A0",
        "'+1+1",
        "'@SUM(A1)",
        "'-2+3",
        "S1",
        "-2.5",
    ]
    assert back["tscore"].tolist() == table["tscore"].tolist()
    assert neutralise_formulas(pd.DataFrame({"=x": [1]})).columns.tolist() == ["'=x"]


def test_splits_csv_first_cell_is_not_a_formula(tmp_path, key_file):
    manifest = pd.DataFrame({"study_id": ["=cmd|' /C calc'!A0"], "patient_id": ["P1"]})
    path = write_splits(manifest, pd.Series(["train"]), tmp_path / "s.csv", clear_ids=True)
    first = path.read_text().splitlines()[1]
    assert not first.startswith(("=", "+", "-", "@", '"='))


# --------------------------------------------------------------------------- run names


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", ".hidden", "-rf", "", "x" * 201])
def test_unsafe_run_names_refused(name):
    with pytest.raises(ConfigError, match="config key 'name'"):
        load_config(None, [f"name={name}"])


def test_safe_run_names_accepted():
    for name in ("run", "fusion_all__lr-0.001", "seed.3"):
        assert load_config(None, [f"name={name}"]).name == name


def test_oc_env_resolver_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text('name: "${oc.env:HOME}"\n')
    with pytest.raises(ConfigError, match="resolver 'oc.env'"):
        load_config(config)
    config.write_text('model:\n  head: deep\nname: "x_${model.head}"\n')
    assert load_config(config).name == "x_deep"  # plain interpolation still works


def test_run_context_keeps_run_folder_inside_output_dir(tmp_path):
    from osteo.pipeline.context import RunContext

    cfg = load_config(None, [f"output_dir={tmp_path / 'runs'}", f"cache_dir={tmp_path / 'c'}"])
    ctx = RunContext(cfg)
    try:
        assert ctx.run_dir.resolve().parent == (tmp_path / "runs").resolve()
    finally:
        ctx.close()


def test_second_live_process_on_one_run_folder_is_refused(tmp_path):
    from osteo.pipeline.context import RunContext, RunFolderBusyError

    cfg = load_config(None, [f"output_dir={tmp_path / 'runs'}", f"cache_dir={tmp_path / 'c'}"])
    first = RunContext(cfg)
    try:
        with pytest.raises(RunFolderBusyError, match="in use by another running osteo process"):
            RunContext(cfg)
    finally:
        first.close()
    RunContext(cfg).close()  # free again once the first run ends


# --------------------------------------------------------------------------- config.yaml, W&B


def test_config_yaml_and_wandb_config_redact_paths(tmp_path):
    cfg = load_config(None, [f"data.manifest={tmp_path}/DOE_JANE_MRN123/manifest.csv", "name=r"])
    save_config(cfg, tmp_path / "config.yaml")
    assert "DOE_JANE" not in (tmp_path / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="data paths are redacted"):
        load_config(tmp_path / "config.yaml")
    assert "DOE_JANE" not in repr(redacted_config(cfg))
    shown = load_config(
        None, [f"data.manifest={tmp_path}/DOE_JANE/manifest.csv", "logger.log_identifiers=true"]
    )
    save_config(shown, tmp_path / "shown.yaml")
    assert "DOE_JANE" in (tmp_path / "shown.yaml").read_text()


def test_wandb_settings_off_unless_identifiers_asked_for():
    from osteo.pipeline.wandb_logging import wandb_settings

    hidden = wandb_settings(False)
    assert hidden.console == "off" and hidden.save_code is False and hidden.disable_git
    assert hidden.x_disable_meta and hidden.x_disable_machine_info
    assert not wandb_settings(True).x_disable_meta


# --------------------------------------------------------------------------- a whole run


def _planted_cohort(tiny_cohort, folder):
    """The tiny cohort under a folder named after a patient, with accession-number study ids
    and MRN patient ids, image and mask files named by the accession number."""
    import shutil

    table = pd.read_csv(tiny_cohort, dtype=str, keep_default_na=False)
    studies = {s: f"ACC{9100000 + i:07d}" for i, s in enumerate(table["study_id"])}
    patients = {p: f"MRN{7700000 + i:07d}" for i, p in enumerate(sorted(set(table["patient_id"])))}
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = table.copy()
    for i, row in table.iterrows():
        new = studies[row["study_id"]]
        shutil.copyfile(tiny_cohort.parent / row["image_path"], folder / "images" / f"{new}.dcm")
        shutil.copyfile(tiny_cohort.parent / row["mask_path"], folder / "masks" / f"{new}.png")
        rows.loc[i, ["study_id", "patient_id", "image_path", "mask_path"]] = [
            new,
            patients[row["patient_id"]],
            f"images/{new}.dcm",
            f"masks/{new}.png",
        ]
    rows.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv", set(studies.values()), set(patients.values())


@pytest.mark.slow
def test_whole_run_folder_carries_no_planted_identifier(tiny_cohort, tmp_path):
    import subprocess

    from run_factory import LIGHT_RADIOMICS, fit_command, fit_env

    manifest, studies, patients = _planted_cohort(tiny_cohort, tmp_path / "DOE_JANE_MRN7654321")
    (tmp_path / "radiomics_light.yaml").write_text(LIGHT_RADIOMICS)
    result = subprocess.run(
        fit_command(tmp_path, manifest, "name=planted", "roi.overlays=per_study"),
        capture_output=True,
        text=True,
        timeout=900,
        env=fit_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    run_dir = tmp_path / "runs" / "planted"
    assert list((run_dir / "wandb").glob("offline-run-*")), "the W&B offline run is missing"
    for name in ("predictions.csv", "splits.csv", "rois.csv", "excluded.csv", "config.yaml"):
        assert (run_dir / name).is_file(), name
    secrets = studies | patients | {"DOE_JANE", "MRN7654321"}
    found = {}
    for path in run_dir.rglob("*"):
        hits = [s for s in secrets if s in str(path.relative_to(run_dir))]
        if path.is_file():
            data = path.read_bytes()
            hits += [s for s in secrets if s.encode() in data]
        if hits:
            found[str(path.relative_to(run_dir))] = sorted(hits)[:3]
    assert not found, f"identifiers in the run folder: {found}"
    # The pipeline still joins its own tables: every prediction has its patient's cluster id.
    predictions = pd.read_csv(run_dir / "predictions.csv", dtype=str)
    assert predictions["patient_id_hash"].notna().all()
    assert set(predictions["study_id"]) <= set(pd.read_csv(run_dir / "splits.csv")["study_id"])


def test_readers_file_with_real_ids_joins_pseudonymised_predictions(tmp_path, key_file):
    from osteo.evaluation.runs import load_readers

    predictions = pd.DataFrame({"study_id": [privacy.pseudonym(s, "study") for s in ("S1", "S2")]})
    path = tmp_path / "readers.csv"
    path.write_text("study_id,reader,score\nS1,R1,3\nS2,R1,4\n")
    table = load_readers(path, predictions)
    assert table["study_id"].tolist() == predictions["study_id"].tolist()


def test_split_assignment_does_not_depend_on_the_key(monkeypatch):
    from osteo.data.manifest import make_splits

    rows = [
        {
            "study_id": f"S{i}",
            "patient_id": f"P{i // 2}",
            "site": "A" if i % 5 else "B",
            "study_date": pd.Timestamp("2015-01-01"),
            "label": int(i % 7 == 0),
        }
        for i in range(200)
    ]
    table = pd.DataFrame(rows)
    splits = []
    for key in ("a" * 32, "b" * 32):
        monkeypatch.setenv(privacy.KEY_ENV, key)
        privacy.reset_key_cache()
        splits.append(make_splits(table, None, None, ["A"], ["B"], 0.2, seed=0))
    privacy.reset_key_cache()
    assert splits[0].equals(splits[1])


def test_run_folder_through_a_symlink_outside_output_dir_is_refused(tmp_path):
    from osteo.pipeline.context import RunContext

    (tmp_path / "runs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs" / "link").symlink_to(tmp_path / "elsewhere")
    cfg = load_config(
        None, [f"output_dir={tmp_path / 'runs'}", "name=link", f"cache_dir={tmp_path / 'c'}"]
    )
    with pytest.raises(ConfigError, match="outside output_dir"):
        RunContext(cfg)
