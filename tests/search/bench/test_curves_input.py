"""bench search names a curves file that is missing or not one, exits 2, and replays nothing."""
from search.cli import main


def test_a_missing_or_foreign_curves_file_exits_2_naming_it(tmp_path, capsys):
    assert main(["bench", "search", "--curves", str(tmp_path / "none.json.gz")]) == 2
    assert f"{tmp_path / 'none.json.gz'}: curves file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "curves"}')
    assert main(["bench", "search", "--curves", str(bad)]) == 2
    assert f"{bad}: not a curves file of bench curves (no 'configs')" in capsys.readouterr().err
