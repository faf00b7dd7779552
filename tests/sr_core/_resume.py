"""A trial killed at the report of epoch 2 (as a killed process would be: the epoch-2 checkpoint is
written before the report that announces it), then resumed from that checkpoint in a fresh call."""
import pytest

from sr_core.train import train_trial


class Killed(BaseException):
    pass


def _kill_at_two(report):
    if report["epoch"] == 2:
        raise Killed
    return True


def killed_then_resumed(config, data, folder, on_epoch=None):
    """The resumed trial's result (`on_epoch` sees the resumed session's reports)."""
    with pytest.raises(Killed):
        train_trial(config, data, checkpoint_dir=folder, on_epoch=_kill_at_two)
    return train_trial(config, data, checkpoint_dir=folder, on_epoch=on_epoch)
