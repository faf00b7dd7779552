"""The trainer's fast paths: off, they are the plain trainer bit for bit; on, one at a time, they train
the same net; with all of them (background checkpoints included) a resumed trial still equals an
uninterrupted one."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from sr_core import metrics
from sr_core.checkpoint import BEST_FILE, CHECKPOINT_FILE, ENDED_FILE
from sr_core.models import build_model
from sr_core.augment import augment_batch_host
from sr_core.pixels import to_float
from sr_core.train import FastPaths, TrialConfig, lr_at, train_trial

FAST = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=3,
                   batch_size=8, patience=5, seed=1)
ALL_ON = FastPaths(async_checkpoint=True)


def _metrics_only(history):
    return [{k: v for k, v in h.items() if k not in ("epoch_seconds", "images_per_s")} for h in history]


def _plain_trainer(config, data):
    """The trainer as it was before any fast path, written out plainly (CPU): host generator, one
    host->device index copy per batch, augment_batch_host, plain Adam, eval in batches of 64 summed
    in Python. FastPaths.reference() must reproduce it exactly."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.arch, config.blocks, config.channels)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    n, b = len(data.train), config.batch_size
    steps = math.ceil(n / b)
    history, best = [], None
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        loss_sum = torch.zeros(())
        for i in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at((epoch - 1) * steps + i, steps * config.epochs, config)
            idx = order[i * b:(i + 1) * b]
            x, y = augment_batch_host(to_float(data.train.lr[idx]), to_float(data.train.hr[idx]), generator=gen)
            loss = F.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            loss_sum += loss.detach() * len(idx)
        model.eval()
        sums = [0.0, 0.0, 0.0]
        with torch.inference_mode():
            for start in range(0, len(data.val), 64):
                pred = model(to_float(data.val.lr[start:start + 64])).float()
                hr = to_float(data.val.hr[start:start + 64])
                for k, fn in enumerate((metrics.mse, metrics.psnr, metrics.ssim)):
                    sums[k] += fn(pred, hr).sum().item()
        row = {"train/mse": loss_sum.item() / n, "val/mse": sums[0] / len(data.val),
               "val/psnr": sums[1] / len(data.val), "val/ssim": sums[2] / len(data.val)}
        history.append(row)
        if best is None or row["val/mse"] < best[0]:
            best = (row["val/mse"], {k: v.clone() for k, v in model.state_dict().items()})
    return history, best[1]


def test_reference_fast_paths_are_the_plain_trainer_bit_for_bit(tiny_data):
    config = dataclasses.replace(FAST, epochs=2)
    expected, expected_weights = _plain_trainer(config, tiny_data)
    result = train_trial(config, tiny_data, fast_paths=FastPaths.reference())
    got = [{k: h[k] for k in ("train/mse", "val/mse", "val/psnr", "val/ssim")} for h in result.history]
    assert got == expected
    for k, v in expected_weights.items():
        assert torch.equal(result.weights[k], v), k


@pytest.mark.parametrize("switch", ["channels_last", "fused_adam", "lagged_nan_check", "eval_batch"])
def test_each_numeric_fast_path_alone_trains_the_same_net(tiny_data, switch):
    """Paths that leave the random stream alone change at most rounding: the same history to ~1e-4."""
    reference = FastPaths.reference()
    one_on = dataclasses.replace(reference, **{switch: 256 if switch == "eval_batch" else True})
    a = train_trial(FAST, tiny_data, fast_paths=reference)
    b = train_trial(FAST, tiny_data, fast_paths=one_on)
    for ha, hb in zip(a.history, b.history):
        for key in ("train/mse", "val/mse", "val/psnr", "val/ssim"):
            assert hb[key] == pytest.approx(ha[key], rel=1e-4), (switch, key)


def test_device_rng_on_cpu_draws_the_very_same_numbers(tiny_data):
    """On CPU the "device" generator is the host's Mersenne Twister: drawing an epoch's ops in one go
    yields the numbers the reference draws batch by batch, so the gather path must reproduce the
    reference exactly: the same samples, turned the same way."""
    config = dataclasses.replace(FAST, batch_size=4)
    host = train_trial(config, tiny_data, fast_paths=FastPaths.reference())
    device = train_trial(config, tiny_data, fast_paths=dataclasses.replace(FastPaths.reference(), device_rng=True))
    assert _metrics_only(device.history) == _metrics_only(host.history)


def test_all_fast_paths_with_background_checkpoints_resume_exactly(tiny_data, tmp_path):
    config = dataclasses.replace(FAST, epochs=4)
    reference = train_trial(config, tiny_data, checkpoint_dir=tmp_path / "ref", fast_paths=ALL_ON)

    class Killed(BaseException):
        pass

    announced = []

    def kill_at_two(report):
        announced.append(report["checkpoint/epoch"])
        if report["epoch"] == 2:
            raise Killed
        return True

    with pytest.raises(Killed):
        train_trial(config, tiny_data, checkpoint_dir=tmp_path / "run", on_epoch=kill_at_two, fast_paths=ALL_ON)
    # Epoch N's checkpoint is written during epoch N+1 and announced by its report: at the kill,
    # epoch 1's was the newest announced (and the one on disk), so epochs 2..4 run again.
    assert announced == [0, 1]
    assert torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    seen = []
    resumed = train_trial(config, tiny_data, checkpoint_dir=tmp_path / "run", fast_paths=ALL_ON,
                          on_epoch=lambda r: seen.append((r["epoch"], r["checkpoint/epoch"])) or True)
    assert seen == [(2, 1), (3, 2), (4, 3)]
    assert _metrics_only(resumed.history) == _metrics_only(reference.history)
    for k, v in reference.weights.items():
        assert torch.equal(resumed.weights[k], v), k
    # When train_trial returns, the last epoch's files are on disk and the trial is recorded as ended.
    assert torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)["epoch"] == 4
    assert (tmp_path / "run" / ENDED_FILE).exists() and (tmp_path / "run" / BEST_FILE).exists()
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_synchronous_checkpoints_are_announced_by_their_own_report(tiny_data, tmp_path):
    seen = []
    train_trial(FAST, tiny_data, checkpoint_dir=tmp_path,
                on_epoch=lambda r: seen.append((r["epoch"], r["checkpoint/epoch"])) or True)
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_best_file_holds_the_best_epochs_weights_with_background_checkpoints(tiny_data, tmp_path):
    result = train_trial(FAST, tiny_data, checkpoint_dir=tmp_path, fast_paths=ALL_ON)
    saved = torch.load(tmp_path / BEST_FILE, weights_only=True)
    assert saved["config"]["channels"] == FAST.channels
    for k, v in result.weights.items():
        assert torch.equal(saved["state_dict"][k], v), k


def test_a_pruned_trial_with_background_checkpoints_is_recorded_as_ended(tiny_data, tmp_path):
    first = train_trial(FAST, tiny_data, checkpoint_dir=tmp_path, fast_paths=ALL_ON, on_epoch=lambda r: False)
    assert first.status == "pruned" and first.epochs == 1
    again = train_trial(FAST, tiny_data, checkpoint_dir=tmp_path, fast_paths=ALL_ON,
                        on_epoch=lambda r: pytest.fail("no epoch may run again"))
    assert again.status == "pruned" and again.history == first.history


def test_resuming_with_the_other_random_stream_is_refused(tiny_data, tmp_path):
    train_trial(dataclasses.replace(FAST, epochs=1), tiny_data, checkpoint_dir=tmp_path,
                fast_paths=FastPaths.reference())
    (tmp_path / ENDED_FILE).unlink()  # as if interrupted after epoch 1
    with pytest.raises(ValueError, match="device_rng"):
        train_trial(dataclasses.replace(FAST, epochs=1), tiny_data, checkpoint_dir=tmp_path)


def test_a_failed_background_write_is_raised_in_the_trial(tiny_data, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the checkpoint folder should be")
    with pytest.raises(RuntimeError, match="not-a-folder"):
        train_trial(FAST, tiny_data, checkpoint_dir=blocker, fast_paths=ALL_ON)


def test_fast_paths_validate_and_list_their_switches():
    assert "channels_last" in FastPaths.switches() and "compile" not in FastPaths.switches()
    assert not any(getattr(FastPaths.reference(), s) for s in FastPaths.switches())
    assert FastPaths().without("fused_adam").fused_adam is False
    with pytest.raises(ValueError, match="compile"):
        FastPaths(compile="fastest")
    with pytest.raises(ValueError, match="eval_batch"):
        FastPaths(eval_batch=0)


def test_channels_last_only_where_nhwc_pays():
    from sr_core.fastpaths import for_trial
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert not for_trial(FastPaths(), cuda, 612).channels_last  # cuDNN would pad 612 to 616 everywhere
    assert for_trial(FastPaths(), cuda, 64).channels_last
    assert for_trial(FastPaths(), cpu, 612).channels_last
    assert not for_trial(FastPaths(channels_last=False), cpu, 64).channels_last
