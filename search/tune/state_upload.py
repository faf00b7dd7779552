"""Tune's experiment-state upload, made free of the race it has with Tune's own writes.

How Tune saves an experiment: every step of its loop (TUNE_GLOBAL_CHECKPOINT_S=0 here) the driver
writes the experiment state, the searcher's and the callbacks' state into its staging folder inside
the Ray session (`<session>/artifacts/<time>/<experiment>/driver_artifacts/`); each pickle is written
as `.<uuid>-tmp-<name>` and renamed, and experiment_state-*.json is rewritten in place. Then
`StorageContext.syncer` copies that folder to the study's storage folder, which is what
`Tuner.restore` reads, in a background thread, while the loop goes on and writes the next snapshot.

The race: when the copy lists the folder while a `.<uuid>-tmp-*` file exists, that file is renamed
before the copy opens it, and the copy fails with FileNotFoundError ("Failed to open local file
'.../driver_artifacts/.<uuid>-tmp-searcher-state.pkl'"). Tune logs it with a traceback at the next
upload ("Last sync command failed", ray.train._internal.syncer) or at a forced snapshot ("Saving
experiment state to storage ... failed"). The same overlap can copy an experiment_state json that
is half rewritten. Measured with Ray 2.60 on 2 loaded cores: 6 of 5,000 uploads failed (`python
tests/search/tune/upload_race.py`); CI's test_trial_faults printed the traceback once in a full run.

Only state files live in that folder: a trial's checkpoint (with its best.pt) is copied to storage by
the trial itself, synchronously inside `tune.report`, before the report reaches the driver, and
MLflow's artifacts come from that persisted copy. So the race never cost a checkpoint; it cost a
traceback, and once a torn state file (search.tune.torn_state mends those after a kill).

The fix, at the source: on a local (or shared-folder) storage path, the upload runs in the driver's
loop right after the writes, so nothing writes the folder while it is copied. The folder holds a few
small files (about 10 files, 0.5 MB for a demo study): a copy of milliseconds. On remote storage
(s3://, gs://...) the copy stays in the background, as a long upload should, but skips Tune's
temporary files, the only files that vanish from the folder. A failed upload is one plain warning
line, never a traceback: the next snapshot uploads the whole folder again.
"""
from __future__ import annotations

import logging

import pyarrow.fs
from ray.train._internal import storage as ray_storage

logger = logging.getLogger(__name__)

#: What Tune's atomic writes name their temporary files (ray.tune.utils.util._atomic_save), as Ray's
#: upload matches them: fnmatch on the path relative to the staging folder.
TEMPORARY = [".*-tmp-*", "*/.*-tmp-*"]


def _upload(local_path: str, fs, fs_path: str, exclude: list[str] | None = None) -> None:
    """Ray's upload of the staging folder, with a failure told in one line. Any failure: Ray's own
    background upload logged every exception and went on, and a study must not end on a snapshot that
    the next step takes again."""
    try:
        ray_storage._upload_to_fs_path(local_path=local_path, fs=fs, fs_path=fs_path, exclude=exclude)  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001
        logger.warning("Tune's experiment-state upload to %s failed (%s: %s); the next snapshot uploads it again",
                       fs_path, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")


class StateUpload(ray_storage._FilesystemSyncer):  # noqa: SLF001
    """The syncer of the driver's experiment state: in the foreground on local storage, in the
    background without Tune's temporary files elsewhere; a failure is logged in one line, not raised."""

    @property
    def local(self) -> bool:
        return isinstance(self.storage_filesystem, pyarrow.fs.LocalFileSystem)

    def _sync_up_command(self, local_path: str, uri: str, exclude: list | None = None):
        if not self.local:
            exclude = [*(exclude or []), *TEMPORARY]
        return _upload, dict(local_path=local_path, fs=self.storage_filesystem, fs_path=uri, exclude=exclude)

    def _launch_sync_process(self, sync_command) -> None:
        command, kwargs = sync_command
        if command is _upload and self.local:
            self.wait()  # nothing runs in the background here; kept for a syncer restored mid-upload
            self._current_cmd = sync_command
            command(**kwargs)
            return
        super()._launch_sync_process(sync_command)


def install() -> None:
    """Make every StorageContext made from now on in this process (the driver's, for each Tuner) use
    StateUpload. Trials never upload through it: sync_artifacts is off, checkpoints go their own way."""
    if ray_storage._FilesystemSyncer is not StateUpload:  # noqa: SLF001
        ray_storage._FilesystemSyncer = StateUpload  # noqa: SLF001
