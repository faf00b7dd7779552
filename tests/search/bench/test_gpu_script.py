"""The one-lease GPU script (python3 -m search.bench.gpu) in its --smoke mode, on a bare box."""
import json

import pytest



@pytest.mark.slow
def test_the_gpu_script_smoke_runs_its_sections_and_writes_their_files(bare, tmp_path):
    out = tmp_path / "gpu"
    done = bare("-m", "search.bench.gpu", "--smoke", "--out", str(out),
                "--only", "a_train_b24,e_profile_b24,c_checkpoint,d_packing", timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["sections"]] == ["ok"] * 4, summary["sections"]
    train = json.loads((out / "a_train_b24.json").read_text())
    assert train["spec"]["blocks"] == 1 and train["images_per_s"] == train["ours"]["images_per_s"]
    checkpoint = json.loads((out / "c_checkpoint.json").read_text())
    assert checkpoint["background"]["announced"] == [[1, 0], [2, 1], [3, 2]]
    packing = json.loads((out / "d_packing.json").read_text())
    assert [r["processes"] for r in packing["rows"]] == [1, 2]
    for row in packing["rows"]:  # every process finished, and the aggregate counts all their images
        assert len(row["per_process_images_per_s"]) == row["processes"], packing


