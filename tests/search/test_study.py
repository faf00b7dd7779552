import pytest
from _study_toml import study_toml

from search.cli import main
from search.study import StudyError, bundled_studies, load_study, parse_study

MINIMAL = study_toml(space={"arch": "residual", "blocks": [1, 2], "channels": [8], "lr": [1e-3], "eta_min": 1e-5},
                     search={"sampler": "grid"}, train={"epochs": 4})


def test_bundled_studies_load_and_the_residual_grid_is_the_original():
    assert {"demo", "residual", "refiner"} <= set(bundled_studies())
    residual = load_study("residual")
    assert residual.grid_size == 3 * 11 * 4 == residual.num_trials
    assert residual.train.epochs == 75 and residual.space["eta_min"] == (1e-7,)
    refiner = load_study("refiner")
    assert refiner.space["arch"] == ("refiner",) and refiner.grid_size == 12
    demo = load_study("demo")
    assert set(demo.space["arch"]) == {"residual", "refiner"} and demo.schedule == "halving" and demo.final.epochs > 0


@pytest.mark.parametrize("edit,field", [
    (("[train]", "[train]\nbogus = 1"), "[train].bogus"),
    (("epochs = 4", "epochs = 'four'"), "[train].epochs"),
    (("arch = \"residual\"", "arch = \"gan\""), "[space].arch"),
    (("eta_min = 1e-5", "eta_min = 1e-2"), "[space].eta_min"),
    (("blocks = [1, 2]", "blocks = [1, -2]"), "[space].blocks"),
    (("sampler = \"grid\"", "sampler = \"bayes\""), "[search].sampler"),
    (("lr = [1e-3]", "lr = {low = 1e-4, high = 1e-3}"), "[search].sampler"),
    (("[train]", "[pruner]\ngrace_period = 9\n[train]"), "[pruner].grace_period"),
    (("[search]", "[extras]\nx = 1\n[search]"), "[extras]"),
    (("[train]", "[pruner]\naudit = -1\n[train]"), "[pruner].audit"),
    (("[train]", "[pruner]\nkind = \"none\"\naudit = 2\n[train]"), "[pruner].audit"),
    (("[train]", "[questions]\ndepth = {vary = \"lr\"}\n[train]"), "[questions].depth.vary"),
    (("[train]", "[questions]\ndepth = {vary = \"channels\"}\n[train]"), "[questions].depth.vary"),
    (("[train]", "[questions]\ndepth = {vary = \"blocks\", fixed = {channels = 16}}\n[train]"),
     "[questions].depth.fixed.channels"),
    (("[train]", "[questions]\ndepth = {vary = \"blocks\", size = 1}\n[train]"), "[questions].depth.size"),
    (("[train]", "[questions]\nchoose_at = 3\ndepth = {vary = \"blocks\"}\n[pruner]\nkind = \"halving\"\n"
                 "grace_period = 1\nreduction_factor = 2\n[train]"), "[questions].choose_at"),
    (("[train]", "[questions]\nask = \"yes\"\n[train]"), "[questions].ask"),
])
def test_a_wrong_field_is_named(edit, field):
    with pytest.raises(StudyError) as exc:
        parse_study(MINIMAL.replace(*edit), "my.toml", "my")
    assert field in str(exc.value) and "my.toml" in str(exc.value)


def test_overrides_are_validated_too():
    study = parse_study(MINIMAL, "my.toml", "my").with_overrides(epochs=6, cpus_per_trial=2)
    assert study.train.epochs == 6 and study.resources.cpus_per_trial == 2
    with pytest.raises(StudyError, match="epochs"):
        study.with_overrides(epochs=0)


def test_cli_exits_2_naming_the_field_of_a_bad_study_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace("channels = [8]", "channels = [8, 'wide']"))
    assert main(["run", "--study", str(bad), "--workdir", str(tmp_path / "w"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "[space].channels" in err and str(bad) in err
    assert not (tmp_path / "w").exists()  # nothing half-written


def test_unknown_study_exits_2(capsys, tmp_path):
    assert main(["run", "--study", "nope", "--workdir", str(tmp_path), "--dry-run"]) == 2
    assert "nope" in capsys.readouterr().err


def test_usage_error_exits_2():
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2


def test_dry_run_of_the_residual_study_prints_grid_and_gpu_hours(tmp_path, capsys):
    assert main(["run", "--study", "residual", "--workdir", str(tmp_path), "--dry-run", "--tflops", "100"]) == 0
    out = capsys.readouterr().out
    assert "132 configs" in out and "GPU-hours" in out and "TFLOP/s" in out


def test_unreachable_tracking_server_fails_fast_with_exit_2(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(MINIMAL)
    code = main(["run", "--study", str(study), "--workdir", str(tmp_path / "w"),
                 "--tracking-uri", "http://127.0.0.1:9", "--no-report"])
    assert code == 2
    err = capsys.readouterr().err
    assert "127.0.0.1:9" in err and "unreachable" in err


def test_an_audit_runs_the_search_s_own_budget_without_a_pruner():
    study = parse_study(MINIMAL.replace("[train]", "[pruner]\naudit = 2\n[train]"), "my.toml", "my")
    audit = study.audit_study()
    assert study.pruner.audit == 2 and audit.schedule == "none" and audit.train == study.train
    assert audit.rungs() == [] and audit.final.epochs == 0


def test_other_data_drops_the_files_description_which_speaks_of_the_files_data():
    study = parse_study('[study]\ndescription = "on the embedded photos"\n' + MINIMAL, "my.toml", "my")
    assert study.description == "on the embedded photos"
    assert study.with_overrides(data=study.data).description == "on the embedded photos"  # same data: kept
    moved = study.with_overrides(data="/photos/mine")
    assert moved.data == "/photos/mine" and moved.description == ""


def test_questions_are_slices_whose_cells_hold_every_lr_of_a_point():
    from search.questions import slice_configs
    study = load_study("demo")
    assert [q.name for q in study.questions.active] == ["arch", "depth", "width"]
    cells = slice_configs(study.questions, study.grid())
    # refiner/residual x 3 depths at c16, residual depths at c32, residual widths at b4 (b4 c16 and
    # b4 c32 shared): 10 points, each one config (the demo has one lr)
    assert len(cells) == 10 and all(len(configs) == 1 for configs in cells.values())
    residual = load_study("residual")
    cells = slice_configs(residual.questions, residual.grid())
    assert len(cells) == 3 + 11 - 1 and all(len(configs) == 4 for configs in cells.values())  # 4 lrs each
    assert residual.questions.choose_at == 12 and "questions" in residual.flat_params()
    assert residual.with_overrides(questions=False).questions.active == ()


def test_the_loss_is_fixed_in_train_or_searched_in_space_never_both():
    assert parse_study(MINIMAL, "my.toml", "my").space["loss"] == ("mse",)  # the original study's
    fixed = parse_study(MINIMAL.replace("[train]", "[train]\nloss = \"l1\""), "my.toml", "my")
    assert fixed.space["loss"] == ("l1",) and fixed.trial_config(fixed.grid()[0]).loss == "l1"
    searched = parse_study(MINIMAL.replace("eta_min = 1e-5", "eta_min = 1e-5\nloss = [\"l1\", \"charbonnier\"]"),
                           "my.toml", "my")
    assert searched.grid_size == 2 * 2 and {p["loss"] for p in searched.grid()} == {"l1", "charbonnier"}
    for text, field in ((MINIMAL.replace("[train]", "[train]\nloss = \"l2\""), "[train].loss"),
                        (MINIMAL.replace("eta_min = 1e-5", "eta_min = 1e-5\nloss = [\"l1\", 2]"), "[space].loss"),
                        (MINIMAL.replace("eta_min = 1e-5", "eta_min = 1e-5\nloss = \"mse\"").replace(
                            "[train]", "[train]\nloss = \"l1\""), "[train].loss")):
        with pytest.raises(StudyError, match=field.replace("[", r"\[").replace("]", r"\]")):
            parse_study(text, "my.toml", "my")
