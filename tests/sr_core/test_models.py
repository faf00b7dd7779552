import pytest
import torch
from torch import nn

from sr_core.errors import ConfigError
from sr_core.models import (MODELS, build_model, count_parameters, flops_per_image, model_names, params_count,
                             register_model)

ARCHS = model_names()  # the tests run over the registry, as timm's do


def _hook_flops(model: nn.Module) -> int:
    """Count conv multiply-adds with forward hooks on a real forward pass."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += 2 * k * module.in_channels * module.out_channels // module.groups * output[0, 0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("arch", ARCHS)
def test_shape_and_range_contract(arch):
    model = build_model(arch, blocks=2, channels=8)
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 3, 128, 128)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("blocks,channels", [(1, 4), (3, 8)])
def test_analytic_flops_match_a_hook_count(arch, blocks, channels):
    assert flops_per_image(arch, blocks, channels) == _hook_flops(build_model(arch, blocks, channels))


@pytest.mark.parametrize("arch", ARCHS)
def test_analytic_params_match_the_model(arch):
    assert params_count(arch, 3, 16) == count_parameters(build_model(arch, 3, 16))


def test_refiner_costs_more_than_residual_at_equal_size():
    assert flops_per_image("refiner", 8, 64) > 5 * flops_per_image("residual", 8, 64)


@pytest.mark.parametrize("arch", ARCHS)
def test_untrained_net_is_bicubic(arch):
    """Zero-initialised residual branches: at init the net outputs the bicubic upsample."""
    x = torch.rand(2, 3, 32, 32)
    bicubic = nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(build_model(arch, 2, 8)(x), bicubic)


@pytest.mark.parametrize("arch", ARCHS)
def test_24_blocks_train_a_few_steps_without_nan(arch):
    """The original study's refiner collapsed at 24 blocks; zero-init must keep it stable."""
    torch.manual_seed(0)
    model = build_model(arch, blocks=24, channels=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 128, 128)
    losses = []
    for _ in range(3):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("bad", [dict(arch="gan", blocks=1, channels=4),
                                 dict(arch="residual", blocks=-1, channels=4),
                                 dict(arch="residual", blocks=1, channels=0)])
def test_bad_arguments_are_named(bad):
    with pytest.raises(ConfigError) as exc:
        build_model(**bad)
    assert exc.value.field in bad and exc.value.field in str(exc.value)


def test_the_registry_is_the_list_of_architectures_and_refuses_a_second_entry_of_a_name():
    assert ARCHS == ("refiner", "residual") and set(MODELS) == set(ARCHS)
    with pytest.raises(ValueError, match="'residual' is registered already"):
        register_model("residual")(nn.Identity)
    assert MODELS["residual"].__name__ == "ResidualSR"  # the refused entry changed nothing


def _perturbed(arch: str, blocks: int, channels: int = 4) -> nn.Module:
    """Random non-zero weights everywhere (the zero-init last convs would hide the body's reach)."""
    torch.manual_seed(blocks)
    model = build_model(arch, blocks, channels).double()
    for p in model.parameters():
        nn.init.normal_(p, std=0.3)
    return model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("blocks", [0, 1, 2, 3])
@pytest.mark.parametrize("axis", [-2, -1])
def test_receptive_radius_bounds_the_reach_of_an_output_pixel(arch, blocks, axis):
    """The gradient of the HR pixels of LR row (or column) 20 is non-zero exactly on the LR rows they
    read: within the declared radius, and at most one pixel short of it (no wasted overlap)."""
    model = _perturbed(arch, blocks)
    x = torch.rand(1, 3, 40, 40, dtype=torch.float64, requires_grad=True)
    model(x).narrow(axis, 80, 4).sum().backward()
    other = -1 if axis == -2 else -2
    reached = torch.nonzero(x.grad.abs().sum(dim=(0, 1, other)))[:, 0]
    reach = max(20 - reached.min().item(), reached.max().item() - 20)
    assert reach <= model.receptive_radius() <= reach + 1


@pytest.mark.parametrize("arch", ARCHS)
def test_widest_activation_is_the_largest_tensor_of_a_forward(arch):
    model, largest = build_model(arch, blocks=2, channels=8), 0

    def hook(module, inputs, output):
        nonlocal largest
        largest = max(largest, output.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.rand(1, 3, 12, 20))
    for h in handles:
        h.remove()
    assert largest == model.widest_activation() * 12 * 20
