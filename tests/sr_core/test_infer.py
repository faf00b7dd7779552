import torch

from sr_core.infer import load_model, save_weights, upscale
from sr_core.models import build_model


def _trained_looking_model():
    torch.manual_seed(0)
    model = build_model("residual", 1, 8)
    for p in model.parameters():  # break the zero-init so the net is not plain bicubic
        torch.nn.init.normal_(p, std=0.05)
    return model


def test_upscale_uint8_and_float_agree_and_stay_in_range():
    model = _trained_looking_model()
    lr = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    out_u8 = upscale(model, lr, batch_size=2)
    out_f = upscale(model, lr.float() / 255)
    assert out_u8.shape == (3, 3, 128, 128)
    assert out_u8.min() >= 0 and out_u8.max() <= 1
    torch.testing.assert_close(out_u8, out_f)


def test_self_ensemble_averages_the_eight_dihedral_variants():
    model = _trained_looking_model()
    lr = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        manual = []
        for flip in (False, True):
            for k in range(4):
                x = torch.flip(lr, dims=(-1,)) if flip else lr
                y = model(torch.rot90(x, k, dims=(-2, -1)))
                y = torch.rot90(y, -k, dims=(-2, -1))
                manual.append(torch.flip(y, dims=(-1,)) if flip else y)
        expected = torch.stack(manual).mean(0).clamp(0, 1)
    ensembled = upscale(model, lr, self_ensemble=True)
    torch.testing.assert_close(ensembled, expected)
    assert not torch.allclose(ensembled, upscale(model, lr))


def test_self_ensemble_is_exact_for_an_equivariant_model():
    """The untrained net is plain bicubic, which commutes with rot90/flip: ensembling changes nothing."""
    model = build_model("residual", 1, 8)
    lr = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(upscale(model, lr, self_ensemble=True), upscale(model, lr), atol=1e-5, rtol=0)


def test_saved_weights_rebuild_the_same_model(tmp_path):
    model = _trained_looking_model()
    save_weights(tmp_path / "w.pt", "residual", 1, 8, model.state_dict())
    loaded = load_model(tmp_path / "w.pt")
    lr = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(upscale(loaded, lr), upscale(model, lr))
