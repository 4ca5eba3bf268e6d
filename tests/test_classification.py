"""Tests of osteo.classification: backbones, bilateral encoder, fusion heads, the Lightning
module and the scikit-learn stacking ensemble. Tiny inputs, CPU, pretrained=False."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from osteo.classification import (
    BilateralEncoder,
    OsteoporosisModule,
    canonical_head_name,
    classifier_config,
    create_backbone,
    create_head,
    head_inputs,
    list_backbones,
    list_heads,
    load_backbone_weights,
    register_head,
)
from osteo.classification.losses import binary_focal_loss_with_logits, masked_tscore_loss

TEXTURE_DIM = 12
IMAGE = 32
LIGHT_BACKBONES = {"small_cnn", "resnet10", "resnet18"}  # also checked backward


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_batch(n: int = 8, images: bool = True, seed: int = 0, size: int = IMAGE) -> dict:
    """A learnable batch: the label is carried by clinical, texture and image brightness."""
    g = torch.Generator().manual_seed(seed)
    label = (torch.arange(n) % 2).float()
    signal = (label * 2 - 1)[:, None]
    batch = {
        "clinical": torch.randn(n, 3, generator=g) + signal,
        "texture": torch.randn(n, TEXTURE_DIM, generator=g) + signal,
        "label": label,
        "tscore": torch.where(label > 0, -3.0, -0.5) + 0.1 * torch.randn(n, generator=g),
        "study_id": [f"s{i}" for i in range(n)],
    }
    batch["tscore"][0] = float("nan")
    if images:
        for side in ("right", "left"):
            noise = torch.randn(n, 1, size, size, generator=g)
            batch[side] = noise + signal[:, :, None, None]
    return batch


def make_module(head: str = "deep_texture_clinical", **overrides) -> OsteoporosisModule:
    settings = dict(
        head=head,
        backbone="small_cnn",
        texture_dim=TEXTURE_DIM,
        pos_weight=1.0,
        scheduler="none",
        hidden=16,
        embed_dim=16,
    )
    settings.update(overrides)
    return OsteoporosisModule(**settings)


# --------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("name", list_backbones())
def test_backbone_maps_one_channel_crop_to_vector(name):
    backbone = create_backbone(name)
    # 32x32 is the smallest crop the heavy networks (/32 overall stride) accept: fast on CPU.
    x = torch.randn(2, 1, 64, 64) if name in LIGHT_BACKBONES else torch.randn(2, 1, 32, 32)
    if name in LIGHT_BACKBONES:
        features = backbone(x)
        features.sum().backward()
        assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)
    else:
        backbone.eval()
        with torch.no_grad():
            features = backbone(x)
    assert features.shape == (2, backbone.out_features)
    with torch.no_grad():
        fmap = backbone.forward_features(x)
    assert fmap.ndim == 4 and fmap.shape[:2] == (2, backbone.out_features)
    assert dict(backbone.named_modules())[backbone.feature_layer] is backbone.features


def test_registry_lists_required_backbones():
    assert {"small_cnn", "resnet10", "resnet18", "densenet121", "efficientnet-b0"} <= set(
        list_backbones()
    )
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("vgg99")


def test_small_cnn_is_three_blocks_32_64_128():
    backbone = create_backbone("small_cnn")
    widths = [m.out_channels for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [32, 64, 128] and backbone.out_features == 128


def test_pretrained_without_weights_path_raises():
    with pytest.raises(ValueError, match="weights_path"):
        create_backbone("resnet10", pretrained=True)
    with pytest.raises(ValueError, match="weights_path"):
        make_module(pretrained=True)


def test_weights_path_loads_a_local_state_dict(tmp_path):
    source = create_backbone("small_cnn")
    path = tmp_path / "small_cnn.pt"
    torch.save(source.state_dict(), path)
    loaded = create_backbone("small_cnn", pretrained=True, weights_path=path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_weights_from_a_whole_model_checkpoint_and_rgb_stem(tmp_path):
    source = create_backbone("small_cnn")
    state = {f"encoder.backbone.{k}": v for k, v in source.state_dict().items()}
    state["head.classifier.weight"] = torch.zeros(1, 4)  # not the backbone's: dropped
    rgb_key = "encoder.backbone.features.block1.0.weight"
    state[rgb_key] = source.state_dict()["features.block1.0.weight"].repeat(1, 3, 1, 1) / 3
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)

    target = create_backbone("small_cnn")
    report = load_backbone_weights(target, path)
    assert report.adapted == ["features.block1.0.weight"]
    assert not report.missing and not report.unexpected
    torch.testing.assert_close(
        target.state_dict()["features.block1.0.weight"],
        source.state_dict()["features.block1.0.weight"],
    )


def test_weights_that_do_not_fit_raise(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"something.else": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="match"):
        create_backbone("small_cnn", weights_path=path)
    torch.save({"features.block1.0.weight": torch.zeros(8, 1, 3, 3)}, path)
    with pytest.raises(ValueError, match="do not fit"):
        create_backbone("small_cnn", weights_path=path)
    with pytest.raises(FileNotFoundError):
        create_backbone("small_cnn", weights_path=tmp_path / "missing.pt")


def test_monai_state_dict_loads_and_matches_monai_forward(tmp_path):
    from monai.networks.nets import resnet

    net = resnet.resnet10(
        spatial_dims=2, n_input_channels=1, feed_forward=False, conv1_t_stride=2
    ).eval()
    path = tmp_path / "monai_resnet10.pt"
    torch.save(net.state_dict(), path)  # MONAI's own keys, without our "features." prefix
    backbone = create_backbone("resnet10", weights_path=path).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), net(x))


# --------------------------------------------------------------------------- encoder


@pytest.mark.parametrize(
    ("combine", "width", "symmetric"),
    [("concat", 32, False), ("difference", 32, True), ("max", 16, True)],
)
def test_bilateral_encoder_combine_modes(combine, width, symmetric):
    encoder = BilateralEncoder("small_cnn", embed_dim=16, combine=combine).eval()
    right, left = torch.randn(3, 1, IMAGE, IMAGE), torch.randn(3, 1, IMAGE, IMAGE)
    with torch.no_grad():
        out, swapped = encoder(right, left), encoder(left, right)
    assert out.shape == (3, width) == (3, encoder.out_features)
    # Swapping the sides moves each hip to the other half of the backbone's batch, and CPU
    # convolution kernels (oneDNN, by CPU model) may sum a batch item's products in another
    # order there: a symmetric combine is equal only up to float32 rounding. A reordered sum
    # of n float32 terms differs by at most about n * eps * max|term| (Higham, ch. 4); the
    # longest sum here is the last conv's 3 x 3 x 64 = 576 products, and the values stay
    # within a small multiple of the output's largest magnitude.
    n_terms = 3 * 3 * 64
    bound = n_terms * torch.finfo(torch.float32).eps * float(out.abs().max())
    difference = float((out - swapped).abs().max())
    if symmetric:
        assert difference <= bound, (difference, bound)
    else:
        assert difference > 100 * bound, (difference, bound)


def test_bilateral_encoder_shares_one_backbone_and_default_gives_256():
    encoder = BilateralEncoder("small_cnn").eval()
    assert encoder.out_features == 256
    right, left = torch.randn(2, 1, IMAGE, IMAGE), torch.randn(2, 1, IMAGE, IMAGE)
    with torch.no_grad():
        together = encoder(right, left)
        one_by_one = torch.cat(
            [encoder.project(encoder.backbone(right)), encoder.project(encoder.backbone(left))], 1
        )
    torch.testing.assert_close(together, one_by_one)


def test_feature_maps_support_grad_cam():
    encoder = BilateralEncoder("small_cnn", embed_dim=8)
    right, left = torch.randn(2, 1, IMAGE, IMAGE), torch.randn(2, 1, IMAGE, IMAGE)
    deep, right_map, left_map = encoder.forward_with_feature_maps(right, left)
    grads = torch.autograd.grad(deep.sum(), (right_map, left_map))
    assert grads[0].shape == right_map.shape == left_map.shape == (2, 128, 4, 4)
    layer = dict(encoder.named_modules())[encoder.feature_layer]
    assert layer is encoder.backbone.features


# --------------------------------------------------------------------------- heads


def test_head_names_are_every_subset_in_canonical_order():
    assert list_heads()[:7] == [
        "clinical",
        "deep",
        "texture",
        "deep_clinical",
        "deep_texture",
        "texture_clinical",
        "deep_texture_clinical",
    ]
    assert canonical_head_name("clinical_deep") == "deep_clinical"
    assert canonical_head_name("clinical_texture") == "texture_clinical"
    assert canonical_head_name("all") == "deep_texture_clinical"
    assert head_inputs("texture_clinical") == {"texture", "clinical"}
    for bad in ("deep_deep", "images", "", "deep__clinical"):
        with pytest.raises(ValueError, match="unknown head"):
            canonical_head_name(bad)


def test_head_name_is_parsed_once_per_settings(monkeypatch):
    """The settings carry the parsed head: building the module from them (with the overrides
    a run adds) parses ``head`` no more, and a bad name fails when the settings are made."""
    import osteo.classification.heads as heads
    import osteo.classification.hparams as hparams

    calls = []
    parse = heads.parse_head

    def counting_parse(name):
        calls.append(name)
        return parse(name)

    monkeypatch.setattr(hparams, "parse_head", counting_parse)
    monkeypatch.setattr(heads, "parse_head", counting_parse)
    settings = classifier_config(
        {"head": "clinical_deep", "backbone": "small_cnn", "embed_dim": 8, "hidden": 8}
    )
    assert settings.head == "deep_clinical" and calls == ["clinical_deep"]
    module = OsteoporosisModule(classifier_config(settings, pos_weight=2.0))
    assert module.inputs == {"deep", "clinical"} and settings.inputs == module.config.inputs
    assert calls == ["clinical_deep"]  # the module and create_head took the parsed head
    with pytest.raises(ValueError, match="unknown head 'deep_images'"):
        classifier_config({"head": "deep_images"})


@pytest.mark.parametrize("aux", [False, True])
@pytest.mark.parametrize("name", [*list_heads(), "all", "clinical_texture_deep"])
def test_head_uses_only_its_inputs(name, aux):
    head = create_head(
        name, deep_dim=32, texture_dim=TEXTURE_DIM, clinical_dim=3, hidden=8, aux_tscore=aux
    )
    assert head.inputs == head_inputs(name)
    dims = {"deep": 32, "texture": TEXTURE_DIM, "clinical": 3}
    features = {k: torch.randn(5, dims[k]) for k in head.inputs}  # only what it uses
    out = head(features)
    assert out["logit"].shape == (5,)
    assert ("tscore" in out) == aux and (not aux or out["tscore"].shape == (5,))
    missing = next(iter(head.inputs))
    with pytest.raises(KeyError, match=missing):
        head({k: v for k, v in features.items() if k != missing})


def test_head_rejects_wrong_feature_width():
    head = create_head("texture", texture_dim=TEXTURE_DIM)
    with pytest.raises(ValueError, match="texture"):
        head({"texture": torch.randn(2, TEXTURE_DIM + 1)})
    with pytest.raises(ValueError, match="dimension"):
        create_head("deep", deep_dim=0)


def test_custom_head_registration():
    @register_head("test_linear_clinical", inputs={"clinical"})
    class LinearClinical(torch.nn.Module):
        inputs = frozenset({"clinical"})

        def __init__(self, clinical_dim, **_):
            super().__init__()
            self.linear = torch.nn.Linear(clinical_dim, 1)

        def forward(self, features):
            return {"logit": self.linear(features["clinical"]).squeeze(1)}

    assert head_inputs("test_linear_clinical") == {"clinical"}
    module = make_module("test_linear_clinical")
    assert module.encoder is None
    assert module(make_batch(images=False))["logit"].shape == (8,)
    with pytest.raises(ValueError, match="already"):
        register_head("deep_clinical", inputs={"deep"})(LinearClinical)


# --------------------------------------------------------------------------- module


def test_head_without_deep_needs_no_images_and_builds_no_encoder():
    module = make_module("texture_clinical")
    assert module.encoder is None and not module.uses_images
    assert not any("encoder" in name for name, _ in module.named_parameters())
    out = module(make_batch(images=False))  # no "right"/"left" keys at all
    assert out["logit"].shape == (8,)
    with pytest.raises(RuntimeError, match="deep"):
        module.deep_features(make_batch())


def test_deep_head_needs_images_and_exposes_deep_features():
    module = make_module("deep_clinical")
    with pytest.raises(KeyError, match="right"):
        module(make_batch(images=False))
    assert module.deep_features(make_batch()).shape == (8, 32)
    assert make_module("deep", embed_dim=128).deep_features(make_batch()).shape == (8, 256)


@pytest.mark.parametrize("head", ["deep_texture_clinical", "clinical"])
def test_a_few_steps_lower_the_loss(head):
    module = make_module(head, lr=1e-2, dropout=0.0)
    optimizer = module.configure_optimizers()
    batch = make_batch(16, size=16)
    losses = []
    for _ in range(12):
        loss = module.compute_losses(module(batch), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_aux_tscore_output_and_loss_ignore_nan():
    module = make_module("deep_clinical", aux_tscore_weight=0.5)
    batch = make_batch()
    out = module(batch)
    assert out["tscore"].shape == (8,)
    losses = module.compute_losses(out, batch)
    assert set(losses) == {"loss", "classification_loss", "tscore_loss"}
    assert all(torch.isfinite(v) for v in losses.values())
    batch["tscore"][:] = float("nan")
    losses = module.compute_losses(module(batch), batch)
    assert losses["tscore_loss"].item() == 0.0
    losses["loss"].backward()
    assert module.head.tscore.weight.grad is not None  # still in the graph (DDP)
    assert "tscore" not in make_module("deep_clinical")(batch)


def test_losses():
    logits, targets = torch.randn(10), (torch.rand(10) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(binary_focal_loss_with_logits(logits, targets, gamma=0.0), bce)
    assert binary_focal_loss_with_logits(logits, targets, gamma=2.0) < bce
    prediction = torch.tensor([1.0, 2.0, 3.0])
    loss = masked_tscore_loss(prediction, torch.tensor([1.0, float("nan"), 1.0]))
    assert loss.item() == pytest.approx(2.0)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown classifier settings"):
        classifier_config(head="deep", learning_rate=1.0)
    with pytest.raises(ValueError, match="scheduler"):
        classifier_config(scheduler="step")
    with pytest.raises(ValueError, match="unknown head"):
        classifier_config(head="deep_images")
    cfg = classifier_config({"head": "clinical_deep", "test_splits": ("a",)})
    assert cfg.head == "deep_clinical" and cfg.test_splits == ["a"] and cfg.uses_images


# --------------------------------------------------------------------------- Lightning


class DictDataset(Dataset):
    def __init__(self, n: int, images: bool, seed: int = 0):
        self.batch = make_batch(n, images=images, seed=seed)
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: (v[i] if not isinstance(v, list) else v[i]) for k, v in self.batch.items()}


def loader(n=16, images=True, seed=0):
    return DataLoader(DictDataset(n, images, seed), batch_size=8)


def trainer(**kwargs) -> pl.Trainer:
    options = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=2,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def test_fit_test_predict_and_checkpoint_roundtrip(tmp_path):
    module = make_module(
        "deep_texture_clinical",
        aux_tscore_weight=0.1,
        scheduler="cosine",
        warmup_epochs=0.5,
        test_splits=["internal_test", "external_test"],
    )
    t = trainer()
    t.fit(module, loader(), loader(seed=1))
    logged = t.callback_metrics
    for key in (
        "train/loss_epoch",
        "train/auc",
        "val/loss",
        "val/auc",
        "val/sensitivity",
        "val/specificity",
        "val/accuracy",
        "val/tscore_mae",
    ):
        assert key in logged and math.isfinite(float(logged[key])), key

    results = t.test(module, [loader(seed=2), loader(seed=3)], verbose=False)
    assert "internal_test/auc" in results[0] and "external_test/auc" in results[1]

    module.return_deep_features = True
    predictions = t.predict(module, loader(seed=2))
    first = predictions[0]
    assert set(first) == {"study_id", "probability", "label", "tscore_pred", "deep_features"}
    assert first["study_id"] == [f"s{i}" for i in range(8)]
    assert first["probability"].shape == (8,) and first["deep_features"].shape == (8, 32)

    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    restored = OsteoporosisModule.load_from_checkpoint(path)
    assert restored.config == module.config
    module.eval(), restored.eval()
    batch = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(restored(batch)["logit"], module(batch)["logit"])


def test_checkpoint_does_not_need_the_initial_weights_file(tmp_path):
    weights = tmp_path / "init.pt"
    torch.save(create_backbone("small_cnn").state_dict(), weights)
    module = make_module("deep", pretrained=True, weights_path=str(weights))
    t = trainer(fast_dev_run=1)
    t.fit(module, loader(8))
    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    weights.unlink()
    restored = OsteoporosisModule.load_from_checkpoint(path)
    assert restored.config.weights_path is None


@pytest.mark.parametrize("scheduler", ["none", "cosine", "onecycle", "plateau"])
@pytest.mark.parametrize("imbalance", ["pos_weight", "focal"])
def test_schedulers_and_imbalance_modes_fit(scheduler, imbalance):
    module = make_module("clinical", scheduler=scheduler, imbalance=imbalance, lr=1e-2)
    t = trainer(max_epochs=2)
    t.fit(module, loader(images=False), loader(images=False, seed=1))
    assert math.isfinite(float(t.callback_metrics["val/auc"]))
    if scheduler in ("cosine", "onecycle"):
        assert t.optimizers[0].param_groups[0]["lr"] < 1e-2


def test_module_without_images_fits_with_dataloader_lacking_images():
    module = make_module("texture_clinical")
    assert module.encoder is None  # a head without deep features builds no CNN
    before = [p.detach().clone() for p in module.parameters()]
    t = trainer(fast_dev_run=2)
    t.fit(module, loader(images=False), loader(images=False))
    assert t.global_step == 2  # two optimiser steps on batches without hip crops
    losses = [v for k, v in t.callback_metrics.items() if k.startswith("train/loss")]
    assert losses and all(math.isfinite(float(v)) for v in losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


# --------------------------------------------------------------------------- stacking


def test_stacking_ensemble_separates_a_toy_problem():
    from sklearn.metrics import roc_auc_score

    from osteo.classification.classical import StackingEnsemble

    rng = np.random.default_rng(0)
    n, informative, noise = 300, 3, 27
    y = rng.integers(0, 2, n)
    x = np.concatenate(
        [rng.normal(size=(n, informative)) + y[:, None] * 1.5, rng.normal(size=(n, noise))], 1
    )
    train, test = slice(0, 200), slice(200, None)
    model = StackingEnsemble(lasso_c=0.05, n_estimators=20, seed=0).fit(x[train], y[train])
    probability = model.predict_proba(x[test])[:, 1]
    assert probability.shape == (100,)
    assert roc_auc_score(y[test], probability) > 0.8
    assert set(range(informative)) <= set(model.selected_.tolist())
    assert len(model.selected_) < informative + noise  # LASSO dropped something
    again = StackingEnsemble(lasso_c=0.05, n_estimators=20, seed=0).fit(x[train], y[train])
    np.testing.assert_allclose(again.predict_proba(x[test])[:, 1], probability)


def test_stacking_ensemble_keeps_a_feature_when_lasso_keeps_none():
    from osteo.classification.classical import StackingEnsemble

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 5)), np.tile([0, 1], 30)
    model = StackingEnsemble(lasso_c=1e-6, n_estimators=5, min_features=2).fit(x, y)
    assert len(model.selected_) == 2
    assert model.predict_proba(x).shape == (60, 2)
