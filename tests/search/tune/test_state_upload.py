"""Tune's experiment-state upload (search.tune.state_upload) against Ray's own storage code: nothing
copies the staging folder while Tune writes it, a temporary file is never uploaded, and a failed upload
is one plain line."""
import logging
import threading

import pyarrow.fs
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from ray.train._internal import storage as ray_storage
from ray.train._internal.syncer import _BackgroundSyncer
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
from ray.tune.utils.util import _atomic_save

from search.tune import state_upload
from search.tune.state_upload import StateUpload


def _staging(tmp_path):
    stage = tmp_path / "stage"
    (stage / "trial_1").mkdir(parents=True)
    (stage / "experiment_state-1.json").write_text('{"trial_data": []}')
    _atomic_save({"step": 1}, str(stage), "searcher-state-1.pkl", "tmp-searcher-state-1.pkl")
    return stage


def test_on_local_storage_the_upload_is_done_when_sync_up_returns_and_no_thread_is_left(tmp_path):
    stage, dest = _staging(tmp_path), tmp_path / "dest"
    syncer = StateUpload(pyarrow.fs.LocalFileSystem())
    threads = threading.active_count()
    assert syncer.sync_up(str(stage), str(dest))
    assert syncer._sync_process is None and threading.active_count() == threads  # nothing in the background
    assert sorted(p.name for p in dest.iterdir()) == ["experiment_state-1.json", "searcher-state-1.pkl", "trial_1"]


def test_each_upload_copies_the_writes_before_it_so_the_copy_equals_the_staging_folder(tmp_path):
    stage, dest = _staging(tmp_path), tmp_path / "dest"
    syncer = StateUpload(pyarrow.fs.LocalFileSystem())
    for step in range(50):  # what Tune's loop does each step: rewrite in place, save atomically, upload
        (stage / "experiment_state-1.json").write_text(f'{{"step": {step}}}')
        _atomic_save({"step": step}, str(stage), "searcher-state-1.pkl", "tmp-searcher-state-1.pkl")
        syncer.sync_up(str(stage), str(dest))
        assert (dest / "experiment_state-1.json").read_text() == f'{{"step": {step}}}'
        assert (dest / "searcher-state-1.pkl").read_bytes() == (stage / "searcher-state-1.pkl").read_bytes()


def test_on_remote_storage_the_background_upload_skips_tunes_temporary_files(tmp_path):
    stage = _staging(tmp_path)
    (stage / ".0a1b-tmp-searcher-state-2.pkl").write_bytes(b"half written")  # a save in flight
    (stage / "trial_1" / ".0a1b-tmp-result.pkl").write_bytes(b"half written")
    memory = MemoryFileSystem()
    remote = pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(memory))
    syncer = StateUpload(remote)
    assert not syncer.local
    syncer.sync_up(str(stage), "/bucket/exp")
    syncer.wait()
    uploaded = sorted(p.rsplit("/", 1)[-1] for p in memory.find("/bucket/exp"))
    assert uploaded == ["experiment_state-1.json", "searcher-state-1.pkl"]


def test_a_failed_upload_is_one_warning_line_without_a_traceback(tmp_path, caplog):
    syncer = StateUpload(pyarrow.fs.LocalFileSystem())
    with caplog.at_level(logging.WARNING, logger=state_upload.logger.name):
        assert syncer.sync_up(str(tmp_path / "gone"), str(tmp_path / "dest"))  # the folder vanished
        syncer.wait()
    (record,) = caplog.records
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert "FileNotFoundError" in record.getMessage() and "next snapshot" in record.getMessage()


def test_install_makes_the_storage_context_of_every_new_tuner_use_it(tmp_path):
    state_upload.install()
    state_upload.install()  # idempotent
    context = ray_storage.StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp")
    assert type(context.syncer) is StateUpload and context.syncer.local


@pytest.mark.parametrize("owner, name", [
    (ray_storage, "_FilesystemSyncer"), (ray_storage, "_upload_to_fs_path"),
    (_BackgroundSyncer, "_launch_sync_process"), (_BackgroundSyncer, "_sync_up_command"),
    (_BackgroundSyncer, "_should_continue_existing_sync"), (_BackgroundSyncer, "wait"),
    (_ExperimentCheckpointManager, "sync_up_experiment_state")])
def test_the_ray_names_it_relies_on_exist(owner, name):
    assert hasattr(owner, name), f"Ray moved {owner.__name__}.{name}: search/tune/state_upload.py needs a look"
