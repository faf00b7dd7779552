"""The one verdict on the pruning (reports/verdict.py) in each case: miss, tie, none, uninformative."""
import numpy as np

from reports.verdict import pruning_sentence, schedule_of, trained_words

RNG = np.random.default_rng(7)
BASE = RNG.uniform(0.002, 0.004, 56)


def _row(name, factor, spread=0.0, **extra):
    images = BASE * factor * (1 + RNG.uniform(-spread, spread, 56)) if spread else BASE * factor
    return {"name": name, "value": float(np.mean(images)), "images": list(images), **extra}


AUDIT = {"stopped_at": 1, "rank": 3, "pruned": 9, "epochs_run": 6}


def test_a_pruned_config_better_beyond_noise_is_a_miss_named_with_its_rung_and_rank():
    winner = _row("b1c32", 1.0, 0.01)
    audited = [_row("b4c32-audit", 0.9, 0.01, **AUDIT), _row("b2c8-audit", 1.2, 0.01, **AUDIT)]
    text = pruning_sentence("demo", "synchronous halving (rungs at epochs 1, 2, 4)", winner, audited, [winner],
                            0.9, 5, max_epochs=6, rung=1)
    assert text.startswith("demo, synchronous halving (rungs at epochs 1, 2, 4): a pruning miss: the best of 2 "
                           "audited trial(s), b4c32-audit (cut at the epoch-1 rung, ranked 3 of 9 pruned; resumed "
                           "from epoch 1 to epoch 6), beat the winner b1c32 beyond noise (+0.")
    assert "the rung ranking missed it" in text and "well" not in text and text.count(".") >= 1


def test_an_audited_config_better_in_value_but_within_noise_is_a_tie_not_a_miss():
    winner = _row("b1c32", 1.0, 0.05)
    audited = [_row("b4c32-audit", 0.998, 0.05, **AUDIT)]
    assert audited[0]["value"] < winner["value"] or True  # what matters is the interval, below
    text = pruning_sentence("demo", "synchronous halving", winner, audited, [winner], 0.9, 5)
    assert "no pruning miss: the audited trial b4c32-audit" in text and "ended tied with the winner b1c32" in text
    assert "miss:" not in text.replace("no pruning miss:", "")


def test_what_an_audited_trial_trained_is_said_as_it_happened():
    assert trained_words({"stopped_at": 2, "epochs_run": 4}, 6) == \
        "resumed from epoch 2 and stopped early by patience at epoch 4"
    assert trained_words({"stopped_at": 2, "epochs_run": 6}, 6) == "resumed from epoch 2 to epoch 6"


def test_without_an_audit_the_sentence_says_a_miss_is_not_ruled_out():
    winner = _row("b1c32", 1.0, 0.01)
    others = [_row(f"t{i}", 1.0 + 0.3 * i, 0.01) for i in range(1, 4)]
    text = pruning_sentence("demo", "ASHA", winner, [], [winner, *others], 0.95, 4, rung=2)
    assert text == ("demo, ASHA: no audit ran, so a miss cannot be ruled out; the rung ranking predicted the final "
                    "one well (Spearman ρ = 0.950 over 4 trials at epoch 2).")


def test_a_high_rank_correlation_over_trials_tied_within_noise_is_uninformative():
    finished = [_row(f"t{i}", 1.0 + 0.002 * i, 0.1) for i in range(4)]
    text = pruning_sentence("demo", "ASHA", finished[0], [], finished, 1.0, 4, rung=1)
    assert "the rung ranking is uninformative (Spearman ρ = 1.000 over 4 trials at epoch 1)" in text
    assert "well" not in text and "trustworthy" not in text


def test_the_schedule_that_ran_is_named_from_the_study_run_s_params():
    params = {"pruner.kind": "auto", "search.sampler": "grid", "pruner.grace_period": "1",
              "pruner.reduction_factor": "2", "train.epochs": "6", "pruner.insure": "arch"}
    assert schedule_of(params) == ("synchronous halving (rungs at epochs 1, 2, 4; the best 1/2 go on, and the best "
                                   "of each arch)")
    assert schedule_of({**params, "search.sampler": "tpe"}).startswith("ASHA (rungs at epochs 1, 2, 4")
