"""How often the trainer checkpoints: cheap checkpoints every epoch, costly ones as the budget allows
(the caller's handling of a new checkpoint counts as cost), the ending epoch and the epochs a search
names always, best.pt never stale, and a resume from an older checkpoint still ends exactly as an
uninterrupted trial. Costs are priced, not timed: the trainer's decisions follow from the policy's
figures, so no test here depends on how fast the machine is."""
import pytest
import torch

from sr_core import checkpoint
from sr_core.checkpoint import BEST_FILE, CHEAP_S, CheckpointPolicy
from sr_core.train import FastPaths, TrialConfig, train_trial

CONFIG = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=6,
                     batch_size=8, patience=10, seed=3)


def test_policy_arithmetic():
    p = CheckpointPolicy(budget=0.02)
    assert p.due()  # nothing known yet: write
    p.wrote(2.0)
    p.announced(1, 1.0)  # cost 3 s: due after 150 s of training
    p.trained_for(149.0)
    assert not p.due()
    p.trained_for(1.0)
    assert p.due()
    p.wrote(CHEAP_S / 2)
    assert p.due()  # cheap: every epoch
    assert CheckpointPolicy(budget=0).due()


class Priced(CheckpointPolicy):
    """The real policy, told that every checkpoint costs `price` seconds and every epoch trains for one
    second, whatever the clock says (a big net on a GPU: a 3 GB write against a short epoch)."""

    def __init__(self, price: float, budget: float = 0.02):
        super().__init__(budget=budget)
        self.price = price

    def trained_for(self, seconds: float) -> None:
        super().trained_for(1.0)

    def wrote(self, seconds: float) -> None:
        super().wrote(self.price)

    def announced(self, epoch: int, seconds: float) -> None:
        super().announced(epoch, 0.0)


class Caller:
    """Records which checkpoint each report announces; dies (like a killed process) at `stop_at`."""

    def __init__(self, stop_at: int | None = None):
        self.stop_at, self.seen = stop_at, []

    def __call__(self, report: dict) -> bool:
        if self.stop_at is not None and report["epoch"] == self.stop_at:
            raise KeyboardInterrupt  # the process dies here: nothing after this epoch's report
        self.seen.append((report["epoch"], report["checkpoint/epoch"]))
        return True


@pytest.mark.parametrize("background", [False, True])
def test_costly_checkpoints_are_spaced_and_the_last_epoch_is_written(tiny_data, tmp_path, background):
    caller = Caller()  # a checkpoint costs 1 s > CHEAP_S: at 2% the next is due after 50 epochs of 1 s
    fast = FastPaths(async_checkpoint=background)
    result = train_trial(CONFIG, tiny_data, checkpoint_dir=tmp_path, on_epoch=caller, fast_paths=fast,
                         checkpoint_policy=Priced(1.0))
    announced = [c for _, c in caller.seen]
    assert result.status == "completed"
    if background:  # epoch N's files are announced by epoch N+1's report
        assert announced == [0, 1, 1, 1, 1, 1]
    else:
        assert announced == [1, 1, 1, 1, 1, 6]
    assert checkpoint.load(tmp_path / checkpoint.CHECKPOINT_FILE)["epoch"] == 6
    best = checkpoint.load(tmp_path / BEST_FILE)["state_dict"]
    assert all(torch.equal(best[k], v) for k, v in result.weights.items())  # the best epoch's, not stale


def test_every_epoch_when_cheap_or_budget_zero(tiny_data, tmp_path):
    caller = Caller()
    train_trial(CONFIG, tiny_data, checkpoint_dir=tmp_path / "a", on_epoch=caller,
                checkpoint_policy=Priced(CHEAP_S / 2))
    assert [c for _, c in caller.seen] == [1, 2, 3, 4, 5, 6]
    caller = Caller()
    train_trial(CONFIG, tiny_data, checkpoint_dir=tmp_path / "b", on_epoch=caller,
                checkpoint_policy=Priced(1.0, budget=0))
    assert [c for _, c in caller.seen] == [1, 2, 3, 4, 5, 6]


def test_the_epochs_a_search_names_are_always_checkpointed(tiny_data, tmp_path):
    """A synchronous schedule pauses trials at its rungs and resumes them from there: those epochs'
    checkpoints are written even when the budget would skip them."""
    caller = Caller()
    train_trial(CONFIG, tiny_data, checkpoint_dir=tmp_path, on_epoch=caller, checkpoint_policy=Priced(1.0),
                checkpoint_at=(2, 4))
    assert [c for _, c in caller.seen] == [1, 2, 2, 4, 4, 6]


def test_a_kill_between_checkpoints_resumes_from_the_older_one_and_ends_the_same(tiny_data, tmp_path):
    whole = train_trial(CONFIG, tiny_data)
    with pytest.raises(KeyboardInterrupt):
        train_trial(CONFIG, tiny_data, checkpoint_dir=tmp_path, on_epoch=Caller(stop_at=4),
                    checkpoint_policy=Priced(1.0))
    assert checkpoint.load(tmp_path / checkpoint.CHECKPOINT_FILE)["epoch"] == 1  # epochs 2-4 lost
    resumed = train_trial(CONFIG, tiny_data, checkpoint_dir=tmp_path)
    assert resumed.status == whole.status == "completed"
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("epoch_seconds", "images_per_s")} for e in h]
    assert strip(resumed.history) == strip(whole.history)
    assert all(torch.equal(resumed.weights[k], v) for k, v in whole.weights.items())
