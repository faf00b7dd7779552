"""bench search on a `bench curves` run that has not finished: the largest complete sub-grid it holds."""
import json

from _driver import write_study
from search.bench.curves import complete_subgrid
from search.cli import main
from search.study import load_study


def test_the_sub_grid_drops_the_values_whose_configs_are_missing_most():
    space = {"blocks": [2, 4, 6], "channels": [4, 8, 12], "lr": [1e-3, 2e-3]}
    grid = [{"blocks": b, "channels": c, "lr": lr} for b in space["blocks"] for c in space["channels"]
            for lr in space["lr"]]
    # depth 6 not started, depth 4 all but its widest: drop depth 6, then width 12 (not depth 4)
    have = [p for p in grid if p["blocks"] != 6 and not (p["blocks"] == 4 and p["channels"] == 12)]
    assert complete_subgrid(space, have) == {"blocks": [2, 4], "channels": [4, 8], "lr": [1e-3, 2e-3]}
    # depth 4 has only one config: dropping it keeps 6 configs, dropping widths 8 and 12 would keep 4
    have = [p for p in grid if p["blocks"] == 2] + [grid[6]]
    assert complete_subgrid(space, have) == {"blocks": [2], "channels": [4, 8, 12], "lr": [1e-3, 2e-3]}
    assert complete_subgrid(space, grid) == space
    assert complete_subgrid(space, []) is None


def _partial(tmp_path, names, epochs=4):
    rows = [{"name": n, "arch": "residual", "blocks": b, "channels": c, "lr": lr, "status": "completed",
             "flops_per_image": 1000 * (b + 1) * c, "val_mse": [0.5 - 0.01 * e - 0.001 * b for e in range(epochs)],
             "val_psnr": [20.0] * epochs, "seconds": [1.0] * epochs} for n, (b, c, lr) in names.items()]
    path = tmp_path / "c.json.gz.partial"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    return path


def test_a_partial_file_replays_its_complete_sub_grid_and_says_which(tmp_path, capsys):
    study_path = write_study(tmp_path, "grid", blocks=(0, 1), channels=(4, 8), lrs=(1e-3, 2e-3), epochs=4)
    study = load_study(study_path)
    points = {study.trial_config(p).run_name: (p["blocks"], p["channels"], p["lr"]) for p in study.grid()}
    kept = {n: v for n, v in points.items() if v[0] == 0 or v == (1, 4, 1e-3)}  # depth 1: one config of 4
    path, out = _partial(tmp_path, kept), tmp_path / "bs.json"
    assert main(["bench", "search", "--curves", str(path), "--study", str(study_path), "--slots", "1",
                 "--only", "halving r1 eta2", "--json", str(out)]) == 0
    assert "5 of 8 configs recorded; replaying the complete sub-grid of 4" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())["rows"]
    assert row["trials"] == 4 and row["grid_configs"] == 8 and row["subgrid"]["blocks"] == [0]
    assert row["winner"] in kept and points[row["winner"]][0] == 0


def test_a_partial_file_without_its_study_or_from_another_grid_exits_2(tmp_path, capsys):
    study_path = write_study(tmp_path, "grid", blocks=(0, 1), channels=(4,), lrs=(1e-3,), epochs=4)
    path = _partial(tmp_path, {"residual_b9_c4_lr0.001_eta0": (9, 4, 1e-3)})
    assert main(["bench", "search", "--curves", str(path)]) == 2
    assert f"{path}: a .partial curves file needs --study" in capsys.readouterr().err
    assert main(["bench", "search", "--curves", str(path), "--study", str(study_path)]) == 2
    assert f"{path}: 1 configs are not in {study_path}'s grid, e.g. residual_b9_c4_lr0.001_eta0" \
        in capsys.readouterr().err
