"""MSP (SkyGroundReID): reference parity of the eval feature (SIE camera×view, stride 12), per-view prompts and the
stage-2 view losses (both switch settings), the three stages with a fake trainer context, parameter counts.

``fixtures/msp/tiny_msp.pt`` was produced by the reference code (sysuchx/SkyGroundReID) with the tiny CLIP of
``fixtures/clipreid`` (see tests/test_clipreid.py), 6 identities, 3 cameras × 2 views, SIE coefficient 0.5,
stride 12, I2T weight 0: the perturbed reference ``state_dict()``, the eval feature, the text features of the
per-view templates ("A sky / ground photo of a X X X X person.", built by the reference's prompt learner with
``n_ctx = 5``) under the joint ``cls_ctx`` together with their token embeddings, two random stored text banks and
the reference's ``loss_air`` (unfiltered, and with its commented-out sky filter), ``loss_ground`` and total.
"""
import os

import pytest
import torch

from test_clipreid import FakeContext, batch_of, close, load_fixture, loaded_model, meta_model, stage_counts

from agreid.config import ConfigError
from agreid.data.records import AERIAL, GROUND, ImageRecord
from agreid.modeling.conversion import convert_reference_state

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "msp")


@pytest.fixture(scope="module")
def fx():
    return load_fixture("tiny_msp", FIXTURES)


def agreid_views(fx):
    """MSP's view labels (ground 0, sky 1) as agreid's codes (aerial 0, ground 1)."""
    return (fx["views_reference"] == 0).long()


def msp_model(fx, tmp_path, **switches):
    model = loaded_model(fx, tmp_path, arch="MSP")
    model.mask_air_loss = switches.get("mask", False)
    model.align_by_pid = switches.get("align", False)
    return model


def test_eval_feature_matches_reference(fx, tmp_path):
    model = msp_model(fx, tmp_path).eval()
    with torch.no_grad():
        feat = model(batch_of(fx, agreid_views(fx)))
    assert close(feat, fx["eval_feature"])


def test_view_prompts_match_reference(fx, tmp_path):
    model = msp_model(fx, tmp_path)
    for view in ("sky", "ground"):
        template = model.template(view)
        assert template.token_prefix.shape[1] == 6 and template.tokens.argmax().item() == 12
        template.token_prefix.copy_(fx[f"{view}_token_prefix"])
        template.token_suffix.copy_(fx[f"{view}_token_suffix"])
        with torch.no_grad():
            assert close(model.encode_text(fx["stage1_text_ids"], template), fx[f"{view}_text_features"])


@pytest.mark.parametrize("mask", [False, True])
def test_image_stage_losses_match_reference(fx, tmp_path, mask):
    model = msp_model(fx, tmp_path, mask=mask)
    model.text_bank_sky.copy_(fx["bank_sky"].float())
    model.text_bank_ground.copy_(fx["bank_ground"].float())
    model.view_banks_ready.fill_(1)
    batch = batch_of(fx, agreid_views(fx))
    model.train()
    assert model.begin_stage("image", FakeContext(batch)) is None
    model.stage = "image"
    losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_triplet", "loss_air", "loss_ground"}  # I2T weight 0
    assert losses["loss_cls"].item() == pytest.approx(0.25 * fx["loss_id_sum"].item(), rel=1e-5)
    assert losses["loss_triplet"].item() == pytest.approx(fx["loss_tri_sum"].item(), rel=1e-5)
    air = fx["loss_air_masked"] if mask else fx["loss_air"]
    assert losses["loss_air"].item() == pytest.approx(air.item(), rel=1e-5)
    assert losses["loss_ground"].item() == pytest.approx(0.1 * fx["loss_ground"].item(), rel=1e-5)
    if not mask:
        assert sum(losses.values()).item() == pytest.approx(fx["loss_msp_total"].item(), rel=1e-5)


class ViewContext(FakeContext):
    """Fake context whose training records are the fixture batch's images filtered by the stage's record rule."""

    def __init__(self, batch, rule):
        super().__init__(batch)
        views = [AERIAL if v == 0 else GROUND for v in batch["views"].tolist()]
        records = [ImageRecord(path=str(i), pid=int(t), camid=int(c), view=v)
                   for i, (t, c, v) in enumerate(zip(batch["targets"], batch["camids"], views))]
        self.train_records = [r for r in records if rule(r)]

    def inference_loader(self, records):
        rows = torch.tensor([int(r.path) for r in records])
        yield {k: v[rows] for k, v in self.batch.items()}


@pytest.mark.parametrize("align", [False, True])
def test_three_stages_with_fake_context(fx, tmp_path, align):
    model = msp_model(fx, tmp_path, align=align)
    stages = model.training_stages()
    assert [s.name for s in stages] == ["prompt_sky", "prompt_ground", "image"]
    assert all(s.solver == "STAGE1" and s.data == "custom" for s in stages[:2])
    batch = batch_of(fx, agreid_views(fx))
    model.train()
    sky_ctx = ViewContext(batch, stages[0].records)
    assert {r.view for r in sky_ctx.train_records} == {AERIAL}
    if not align:  # the sky images show 4 of the 6 identities: the reference's relabelling cannot line up
        with pytest.raises(ConfigError, match="ALIGN_BY_PID"):
            model.begin_stage("prompt_sky", sky_ctx)
        return
    batches = list(model.begin_stage("prompt_sky", sky_ctx))
    assert sky_ctx.cache_keys == ["clip_image_features_sky"]
    assert torch.equal(torch.cat([b["targets"] for b in batches]), batch["targets"][batch["views"] == 0])
    model.stage = "prompt_sky"
    losses = model(batches[0])
    assert set(losses) == {"loss_i2t", "loss_t2i"} and torch.isfinite(sum(losses.values()))
    with torch.no_grad():
        expected_sky = model.encode_text(torch.arange(6), model.sky_template)
    ctx_before = model.prompt_learner.cls_ctx.detach().clone()
    ground_ctx = ViewContext(batch, stages[1].records)
    model.begin_stage("prompt_ground", ground_ctx)
    assert close(model.text_bank_sky, expected_sky) and model.view_banks_ready.tolist() == [1, 0]
    assert not torch.equal(model.prompt_learner.cls_ctx, ctx_before)  # re-drawn for the ground prompts
    ground_start = model.prompt_learner.cls_ctx.detach().clone()
    model.begin_stage("prompt_ground", ground_ctx)  # resumed into the stage: nothing recomputed
    assert torch.equal(model.prompt_learner.cls_ctx, ground_start) and close(model.text_bank_sky, expected_sky)
    model.begin_stage("image", ground_ctx)
    assert model.view_banks_ready.tolist() == [1, 1]
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters()
        if not n.startswith(("prompt_learner.", "text_encoder.")) and not n.endswith("bottleneck.bias")
        and not n.endswith("bottleneck_proj.bias")}
    model.stage = "image"
    losses = model(batch)
    assert {"loss_air", "loss_ground"} <= set(losses) and torch.isfinite(sum(losses.values()))


def test_view_labels_follow_the_reference_relabelling(fx, tmp_path):
    model = msp_model(fx, tmp_path)
    assert model.view_labels(torch.tensor([5, 0, 3, 1, 2, 4, 0]), "sky").tolist() == [5, 0, 3, 1, 2, 4, 0]
    with pytest.raises(ConfigError):
        model.view_labels(torch.tensor([5, 0, 3]), "ground")


def test_no_ground_images_gives_zero_ground_loss(fx, tmp_path):
    model = msp_model(fx, tmp_path)
    model.view_banks_ready.fill_(1)
    batch = batch_of(fx, torch.zeros(8, dtype=torch.long))  # all aerial
    model.train()
    model.begin_stage("image", FakeContext(batch))
    model.stage = "image"
    assert model(batch)["loss_ground"].item() == 0.0


def test_reference_file_gets_banks_from_the_model(fx, tmp_path):
    model = msp_model(fx, tmp_path)
    state = {k: v.float() for k, v in fx["state_dict"].items()}
    converted = convert_reference_state(state, model)
    assert converted.format == "CLIP-ReID" and not converted.dead
    assert set(converted.state_dict) == set(model.state_dict())
    assert any("text_bank_sky" in note for note in converted.notes)


def test_full_size_parameter_counts_equal_reference():
    model = meta_model(arch="MSP", classes=1125, cams=15, views=2, stride=12, sie_cam=True, sie_view=True)
    assert stage_counts(model) == (128_104_192, 2_304_000, 87_667_712, 319)  # reference 316 + 3 bank buffers
    assert model.cv_embed.shape == (30, 768)
