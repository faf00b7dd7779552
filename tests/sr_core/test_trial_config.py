"""sr_core.trial_config: one declaration of a trial's hyperparameters, validated; the run name; the
learning-rate schedule."""
import dataclasses

import pytest

from sr_core.errors import ConfigError
from sr_core.trial_config import LOGGED_FIELDS, TrialConfig, config_from_dict, fields_in, lr_at, run_name


def test_cosine_schedule_runs_from_lr_to_eta_min():
    config = TrialConfig(lr=1e-3, eta_min=1e-5)
    assert lr_at(0, 100, config) == pytest.approx(1e-3)
    assert lr_at(99, 100, config) == pytest.approx(1e-5)
    assert lr_at(49, 100, config) < 1e-3
    values = [lr_at(s, 100, config) for s in range(100)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("field,value", [("arch", "gan"), ("blocks", -1), ("channels", 0), ("lr", 0.0),
                                         ("eta_min", 1.0), ("batch_size", 0), ("epochs", True),
                                         ("epoch_samples", -1), ("grad_clip", 0.0), ("augment", 1),
                                         ("seed", -1), ("fault", "explode@2")])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigError) as exc:
        dataclasses.replace(TrialConfig(), **{field: value})
    assert exc.value.field == field and field in str(exc.value)


def test_zero_epoch_samples_is_the_whole_train_set_and_is_valid():
    assert TrialConfig().epoch_samples == 0 and TrialConfig(epoch_samples=8).epoch_samples == 8


def test_every_field_belongs_to_exactly_one_study_table():
    by_table = {t: [f.name for f in fields_in(t)] for t in ("space", "arch", "train", "search", "faults")}
    assert by_table == {"space": ["arch", "blocks", "channels", "lr", "eta_min", "loss"], "arch": ["arch_params"],
                        "train": ["epochs", "batch_size", "grad_clip", "patience", "augment", "rgb_permute",
                                  "epoch_samples"],
                        "search": ["seed"], "faults": ["fault"]}
    assert sum(by_table.values(), []) == [f.name for f in dataclasses.fields(TrialConfig)]
    # a user arch's parameters are logged one param each (search.tracking), not as one mapping
    assert set(LOGGED_FIELDS) == {f.name for f in dataclasses.fields(TrialConfig)} - {"fault", "arch_params"}


def test_the_run_name_differs_whenever_a_searched_field_differs():
    base = TrialConfig(arch="residual", blocks=4, channels=16, lr=3e-3, eta_min=1e-4)
    assert base.run_name == "residual_b4_c16_lr0.003_eta0.0001" == run_name("residual", 4, 16, 3e-3, 1e-4)
    variants = [dataclasses.replace(base, **{f.name: v}) for f, v in
                zip(fields_in("space"), ("refiner", 8, 32, 1e-3, 1e-5))]
    assert len({base.run_name, *(v.run_name for v in variants)}) == 1 + len(variants)


def test_config_from_dict_names_unknown_keys():
    with pytest.raises(ValueError, match="unknown TrialConfig field.*'width'"):
        config_from_dict({"arch": "residual", "width": 3})
    assert config_from_dict({"blocks": 2, "channels": 4}) == TrialConfig(blocks=2, channels=4)
