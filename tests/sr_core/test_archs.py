"""A study's own architectures (sr_core.archs): found by entry point or module path, built with their
own parameters, measured by torch's FLOP counter, and refused with the arch named when they fail."""
import importlib
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sr_core.archs import ENTRY_POINT_GROUP, installed_archs, probe_net
from sr_core.errors import ConfigError
from sr_core.memory import predict_memory
from sr_core.models import MODELS, build_model, flops_per_image, params_count
from sr_core.trial_config import TrialConfig

EXAMPLE = Path(__file__).parents[1] / "user_arch_example.py"


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The docs' example as a module of the user's own folder (not the package's, not tests/)."""
    shutil.copy(EXAMPLE, tmp_path / "my_sr_nets.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_sr_nets"
    sys.modules.pop("my_sr_nets", None)


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("blocks,channels", [(0, 1), (2, 8), (3, 5)])
def test_the_builtins_analytic_flops_are_what_torchs_counter_counts(arch, blocks, channels):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        build_model(arch, blocks, channels)(torch.zeros(1, 3, 32, 32))
    assert flops_per_image(arch, blocks, channels) == counter.get_total_flops()


def test_a_module_path_builds_the_users_net_with_its_own_parameters(user_module):
    arch = f"{user_module}:make_net"
    net = build_model(arch, 2, 8, {"groups": 2})
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 3, 128, 128)
    assert net.body[0][0].groups == 2
    # counted by torch's counter, checked here by hand: head 3->8, two grouped 8->8 (groups 2), tail 8->48
    pixels = 32 * 32
    assert flops_per_image(arch, 2, 8, {"groups": 2}) == 2 * 9 * pixels * (3 * 8 + 2 * 8 * 8 // 2 + 8 * 48)
    assert params_count(arch, 2, 8, {"groups": 2}) == sum(p.numel() for p in net.parameters())
    assert params_count(arch, 2, 8, {"groups": 1}) > params_count(arch, 2, 8, {"groups": 2})


def test_a_trial_config_carries_the_parameters_into_its_run_name_and_net(user_module):
    config = TrialConfig(arch=f"{user_module}:make_net", blocks=1, channels=4, arch_params={"groups": 2})
    assert config.run_name == f"{user_module}:make_net_b1_c4_groups2_lr0.0001_eta1e-07"
    assert config.net == (f"{user_module}:make_net", 1, 4, (("groups", 2),))
    assert TrialConfig().run_name == "residual_b8_c64_lr0.0001_eta1e-07"  # a built-in's is unchanged
    with pytest.raises(ConfigError, match="takes only blocks and channels"):
        TrialConfig(arch="residual", arch_params={"groups": 2})


def test_the_memory_model_traces_a_users_net_at_its_shape(user_module):
    arch = f"{user_module}:make_net"
    pred = predict_memory(arch, 1, 4, 2, train_images=8, val_images=4, eval_batch=4, precision="fp32",
                          params={"groups": 2})
    n = params_count(arch, 1, 4, {"groups": 2})
    assert pred.params == pred.grads == pred.best_copy == 4 * n  # fp32 weights, their gradients, the copy
    assert pred.saved_activations > 0 and pred.total_bytes > pred.params + pred.grads + pred.adam


def test_an_installed_distributions_entry_point_names_a_factory(tmp_path, monkeypatch):
    """A real (tiny) installed distribution: a .dist-info with entry_points.txt on sys.path."""
    (tmp_path / "tinysr").mkdir()
    (tmp_path / "tinysr" / "__init__.py").write_text(
        "from torch import nn\n"
        "def make(blocks, channels):\n"
        "    return nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), nn.PixelShuffle(4))\n")
    info = tmp_path / "tinysr-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinysr\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntiny = tinysr:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        assert "tiny" in installed_archs()
        assert build_model("tiny", 0, 1)(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 128, 128)
        assert flops_per_image("tiny", 0, 1) == 2 * 9 * 3 * 48 * 32 * 32
    finally:
        sys.modules.pop("tinysr", None)


@pytest.mark.parametrize("source,what", [
    ("raise ImportError('needs the moon')", "cannot import module 'badnet' (ImportError: needs the moon)"),
    ("x = 1", "module 'badnet' has no attribute 'make'"),
    ("def make(blocks, channels):\n    raise ValueError('odd width')", "its factory raised ValueError: odd width"),
    ("def make(blocks, channels):\n    return 42", "its factory returned a int, not a torch.nn.Module"),
    ("from torch import nn\ndef make(blocks, channels):\n    return nn.Conv2d(3, 3, 3, padding=1)",
     "gave [1, 3, 32, 32]; expected [1, 3, 128, 128]"),
    ("from torch import nn\ndef make(blocks, channels):\n    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PixelShuffle(4))",
     "gave [1, 1, 128, 128]; expected [1, 3, 128, 128]"),
])
def test_a_failing_factory_is_a_config_error_naming_the_arch(tmp_path, monkeypatch, source, what):
    (tmp_path / "badnet.py").write_text(source + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigError) as exc:
            probe_net("badnet:make", 1, 4)
        assert exc.value.field == "arch" and str(exc.value).startswith("arch 'badnet:make': ")
        assert what in str(exc.value)
    finally:
        sys.modules.pop("badnet", None)


def test_an_unknown_name_lists_what_an_arch_may_be():
    with pytest.raises(ConfigError, match=r"arch 'nosuchnet': unknown: not a built-in \(refiner, residual\)"):
        build_model("nosuchnet", 1, 4)


def test_the_docs_example_is_the_file_the_end_to_end_test_searches():
    doc = (Path(__file__).parents[2] / "docs" / "studies-and-schedules.md").read_text()
    section = doc[doc.index("## Your own architecture"):]
    block = section[section.index("```python\n") + len("```python\n"):]
    assert block[:block.index("```")] == EXAMPLE.read_text()
