"""Config loading: bases, overrides, strict schema, clear errors, safe YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from osteo.config import ConfigError, load_config, save_config

ROOT = Path(__file__).resolve().parents[1]


def write(path, text):
    path.write_text(text)
    return path


def test_defaults_without_file():
    cfg = load_config()
    assert cfg.data.split.val_fraction == 0.15
    assert cfg.task == "classification"


def test_base_chain_and_override_order(tmp_path):
    write(tmp_path / "root.yaml", "name: root\nseed: 1\ndata:\n  split:\n    seed: 5\n")
    write(tmp_path / "mid.yaml", "base: root.yaml\nseed: 2\n")
    leaf = write(tmp_path / "leaf.yaml", "base: mid.yaml\nname: leaf\n")
    cfg = load_config(leaf, ["seed=3"])
    assert (cfg.name, cfg.seed, cfg.data.split.seed) == ("leaf", 3, 5)


def test_unknown_key_in_file_names_full_path_and_valid_keys(tmp_path):
    path = write(tmp_path / "c.yaml", "data:\n  split:\n    val_fractoin: 0.2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "data.split.val_fractoin" in text and "val_fraction" in text and "c.yaml" in text


def test_unknown_key_on_command_line():
    with pytest.raises(ConfigError, match=r"Unknown config key 'data\.manfest'.*command line"):
        load_config(None, ["data.manfest=x.csv"])


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError, match=r"'seed'.*abc"):
        load_config(None, ["seed=abc"])


def test_bad_choice_lists_valid_choices():
    with pytest.raises(ConfigError, match=r"data\.synthetic\.preset.*huge.*tiny.*default.*paper"):
        load_config(None, ["data.synthetic.preset=huge"])


def test_value_check_beyond_types():
    with pytest.raises(ConfigError, match="val_fraction"):
        load_config(None, ["data.split.val_fraction=1.5"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["seed"])


def test_base_loop_detected(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load_config(tmp_path / "a.yaml")


def test_yaml_cannot_execute_code(tmp_path):
    path = write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("does/not/exist.yaml")


def test_saved_config_reloads_identically(tmp_path):
    # The data paths are redacted in a run folder (docs/security.md): given again, the saved
    # config reproduces the run's.
    cfg = load_config(None, ["name=abc", "data.split.seed=7"])
    saved = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(saved, [f"data.manifest={cfg.data.manifest}"])
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)
    shown = load_config(None, ["name=abc", "logger.log_identifiers=true"])
    saved = save_config(shown, tmp_path / "shown" / "config.yaml")
    assert OmegaConf.to_container(load_config(saved)) == OmegaConf.to_container(shown)


def test_repository_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    files = [p for p in root.glob("*.yaml")]
    assert files, "configs/*.yaml missing"
    for path in files:
        load_config(path)


def test_every_trainer_setting_reaches_lightning_and_unknown_ones_fail_at_start_up(tmp_path):
    from osteo.pipeline.distributed import build_trainer, check_trainer_config

    cfg = load_config(
        ROOT / "configs" / "fusion_all.yaml",
        [
            "trainer.gradient_clip_val=0.5",
            "trainer.accumulate_grad_batches=2",
            "trainer.limit_train_batches=3",
            "trainer.precision=bf16-true",
            "trainer.max_time=00:00:10:00",
            "trainer.extra={num_sanity_val_steps: 0}",
        ],
    )
    check_trainer_config(cfg.trainer)
    trainer = build_trainer(cfg.trainer, max_epochs=1, root_dir=tmp_path)
    assert trainer.gradient_clip_val == 0.5
    assert trainer.accumulate_grad_batches == 2
    assert trainer.limit_train_batches == 3
    assert trainer.num_sanity_val_steps == 0
    assert trainer.precision == "bf16-true"
    for override, message in (
        ("trainer.extra={bogus_argument: 1}", "trainer.extra.bogus_argument.*lightning.Trainer"),
        ("trainer.extra={nospace:1}", "trainer.extra.nospace:1.*lightning.Trainer"),
        ("trainer.extra={max_epochs: 3}", "stages set 'max_epochs'"),
        ("trainer.gradient_clip_algorithm=sideways", "norm or value"),
    ):
        bad = load_config(ROOT / "configs" / "fusion_all.yaml", [override])
        with pytest.raises(ConfigError, match=message):
            check_trainer_config(bad.trainer)


def test_training_keys_change_only_when_a_trainer_setting_leaves_its_default():
    from osteo.pipeline.distributed import training_key_options

    default = load_config(ROOT / "configs" / "fusion_all.yaml")
    # The key recipe from before these settings existed: existing caches stay valid.
    assert training_key_options(default.trainer) == {"precision": "32", "deterministic": False}
    clipped = load_config(ROOT / "configs" / "fusion_all.yaml", ["trainer.gradient_clip_val=1"])
    assert training_key_options(clipped.trainer)["gradient_clip_val"] == 1.0
