"""Bad input through the real CLI: exit 2, one message naming the file, field or service, and nothing
half-made left behind (no workdir, no run, no cache)."""
import os
import socket

import numpy as np
import pytest
from _photos import write_photos
from _study_toml import study_toml
from PIL import Image

from search.cli import main


def study_text(data) -> str:
    return study_toml(study={"name": "bad", "data": data}, search={"sampler": "grid"},
                      space={"arch": "residual", "blocks": [0], "channels": [4], "lr": [1e-3], "eta_min": 1e-5},
                      train={"epochs": 2, "batch_size": 4}, pruner={"kind": "none"},
                      resources={"cpus_per_trial": 1, "gpus_per_trial": 0})


def _png(path, h, w, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _paired(root, lr=(32, 32), hr=(128, 128)):
    for split in ("train", "val"):
        _png(root / split / "lr" / "a.png", *lr)
        _png(root / split / "hr" / "a.png", *hr)
    return root


def _photos_with(root, name, payload: bytes):
    write_photos(root, ("astronaut", "coffee"))
    (root / name).write_bytes(payload)
    return root


def corrupt(root):
    return _photos_with(root, "broken.png", b"\x89PNG\r\n\x1a\n this is not a png"), "broken.png"


def truncated(root):
    good = (write_photos(root / "_src", ("rocket",)) / "rocket.png").read_bytes()
    return _photos_with(root, "cut.png", good[: len(good) // 2]), "cut.png"


def zero_bytes(root):
    return _photos_with(root, "empty.png", b""), "empty.png"


def wrong_size(root):
    return _paired(root, hr=(120, 128)), "a.png"


def unpaired(root):
    _paired(root)
    _png(root / "train" / "lr" / "orphan.png", 32, 32)
    return root, "orphan.png"


def empty_folder(root):
    root.mkdir(parents=True)
    return root, "no images found"


def symlink_loop(root):
    write_photos(root, ("astronaut", "coffee"))
    os.symlink(root / "loop.png", root / "loop.png")
    return root, "loop.png"


def folder_is_a_loop(root):
    root.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(root, root)
    return root, root.name


def missing(root):
    return root / "nowhere", "nowhere"


@pytest.mark.parametrize("make", [corrupt, truncated, zero_bytes, wrong_size, unpaired, empty_folder,
                                  symlink_loop, folder_is_a_loop, missing])
def test_bad_data_exits_2_naming_the_file_and_leaves_no_workdir(tmp_path, capsys, make):
    data, named = make(tmp_path / "data")
    study = tmp_path / "bad.toml"
    study.write_text(study_text(data))
    workdir = tmp_path / "w"
    assert main(["run", "--study", str(study), "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and "Traceback" not in err, err
    assert not workdir.exists()


@pytest.mark.parametrize("edit,field", [
    (("epochs = 2", "epocs = 2"), "[train].epocs"),
    (("epochs = 2", "epochs = \"2\""), "[train].epochs"),
    (("lr = [1e-3]", "lr = [-1e-3]"), "[space].lr"),
    (("blocks = [0]", "blocks = []"), "[space].blocks"),
    (("arch = \"residual\"", "arch = \"srgan\""), "[space].arch"),
])
def test_a_bad_study_file_exits_2_naming_the_file_and_field(tmp_path, capsys, edit, field):
    study = tmp_path / "bad.toml"
    study.write_text(study_text("embedded").replace(*edit))
    workdir = tmp_path / "w"
    assert main(["run", "--study", str(study), "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert field in err and str(study) in err, err
    assert not workdir.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize("flags,named", [
    (["--tracking-uri", "http://127.0.0.1:{port}"], "MLflow server http://127.0.0.1:{port} is unreachable"),
    (["--tracking-uri", "ftp://example/x"], "--tracking-uri 'ftp://example/x': unsupported"),
    (["--address", "127.0.0.1:{port}"], "--address 127.0.0.1:{port}: no Ray cluster answers"),
    (["--address", "ray://127.0.0.1:{port}"], "no Ray cluster answers at 127.0.0.1:{port}"),
    (["--storage", "postgresql://sr:secret@127.0.0.1:{port}/optuna"],
     "--storage postgresql://sr:***@127.0.0.1:{port}/optuna: cannot connect"),
    (["--storage", "optuna.db"], "--storage 'optuna.db': expected a database URL"),
])
def test_an_unreachable_service_exits_2_naming_it_and_writes_nothing(tmp_path, capsys, flags, named):
    port = _closed_port()
    study = tmp_path / "ok.toml"
    study.write_text(study_text(write_photos(tmp_path / "photos", ("astronaut", "coffee"))))
    workdir = tmp_path / "w"
    args = ["run", "--study", str(study), "--workdir", str(workdir)] + [f.format(port=port) for f in flags]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert named.format(port=port) in err, err
    assert "secret" not in err  # a password is never printed
    assert not workdir.exists()
