"""search.state: the study's state file, typed, saved atomically and loaded back."""
import json

from search.state import StudyState


def test_state_round_trips_and_a_study_that_never_started_has_none(tmp_path):
    assert StudyState.load(tmp_path) is None
    state = StudyState(parent_run_id="p1", experiment_id="1", tracking_uri="sqlite:////w/mlflow.db", storage=None,
                       optuna_study="demo-p1", optuna="/w/studies/demo/optuna.journal", ray_storage="/w/ray",
                       overrides={"epochs": 3}, estimate_seconds=12.5)
    state.save(tmp_path)
    back = StudyState.load(tmp_path)
    assert back == state and back.wall_seconds == 0.0 and back.ray_session_dir is None
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # the atomic write left no temporary


def test_a_state_file_with_fields_this_version_does_not_know_still_loads(tmp_path):
    fields = {"parent_run_id": "p", "experiment_id": "1", "tracking_uri": "u", "storage": None,
              "optuna_study": "s", "optuna": "o", "ray_storage": "r", "from_the_future": 1}
    (tmp_path / "state.json").write_text(json.dumps(fields))
    assert StudyState.load(tmp_path).optuna_study == "s"
