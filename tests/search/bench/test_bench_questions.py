"""`bench search` with per-image values and a study's questions: the grid's configs tied with its winner
within noise, whether a schedule's best is among them, and each question step's direction from what a
schedule trained against the full grid's (search/bench/replay.py, search/bench/schedules.py)."""
import math
from pathlib import Path

import pytest
from _study_toml import study_toml

from search.bench.curves import IMAGE_SCALE
from search.bench.replay import Curve, Outcome, answer_questions, summarise
from search.bench.schedules import _recorded_study, map_questions, own_study, replay_file, schedules

SPREAD = [0.6, 1.4, 0.8, 1.2, 0.9, 1.1, 0.7, 1.3]  # each val image's share of the mean: a mean of 1


def _images(mean: float, jitter: tuple) -> list[float]:
    """8 val images whose MSE averages `mean`, each moved by its own `jitter` (a fraction)."""
    raw = [mean * s * (1 + j) for s, j in zip(SPREAD, jitter)]
    return [v * mean * len(raw) / sum(raw) for v in raw]


def _flat(name: str, final: float, jitter: tuple, epochs: int = 4) -> Curve:
    """A curve falling from 2x its final val/mse to it, with per-image values alike at every epoch."""
    means = [final * (2 - e / epochs) for e in range(1, epochs + 1)]
    images = [_images(m, jitter) for m in means]
    return Curve(name, {"blocks": 1}, [sum(i) / len(i) for i in images], [1.0] * epochs, 1.0, images=images)


NOISE = (0.06, -0.05, 0.04, -0.07, 0.05, -0.04, 0.07, -0.06)


def _tied_curves() -> list[Curve]:
    # "near" is 0.2% worse on average but moves image by image by +-7%: tied with the winner; "far" is
    # 10% worse on every image: worse beyond noise
    return [_flat("win", 1.000, (0,) * 8), _flat("near", 1.002, NOISE), _flat("far", 1.100, NOISE[::-1])]


def test_the_tied_set_holds_the_configs_within_noise_of_the_winner_and_says_if_the_found_best_is_in_it():
    curves = _tied_curves()
    # the winner cut at epoch 1, "near" finished: a regret, but within noise of the winner
    outcome = Outcome({"win": 1, "near": 4, "far": 4}, {"win": "pruned", "near": "finished", "far": "finished"}, 9.0)
    figures = summarise(curves, outcome)
    assert figures["winner"] == "win" and figures["found"] == "near" and figures["regret"] > 0
    assert figures["tied_set"] == ["win", "near"]
    assert figures["found_in_tied_set"] and figures["regret_vs_tied"] == 0.0
    gain = figures["found_vs_winner"]
    assert gain["verdict"] == "tied" and gain["low"] < gain["value"] < 0 < gain["high"] and gain["unit"] == "dB"
    # only "far" finished: outside the tied set, its regret counted against the tied set's worst ("near")
    outcome = Outcome({"win": 1, "near": 1, "far": 4}, {"win": "pruned", "near": "pruned", "far": "finished"}, 6.0)
    figures = summarise(curves, outcome)
    assert figures["found"] == "far" and not figures["found_in_tied_set"]
    assert figures["regret_vs_tied"] == pytest.approx(1.100 / 1.002 - 1)
    assert figures["found_vs_winner"]["verdict"] == "worse" and figures["found_vs_winner"]["high"] < 0


def test_without_per_image_values_the_noise_keys_are_none_and_the_others_unchanged():
    curves = _tied_curves()
    for c in curves:
        c.images = None
    outcome = Outcome({"win": 4, "near": 4, "far": 4}, dict.fromkeys(("win", "near", "far"), "finished"), 12.0)
    figures = summarise(curves, outcome)
    assert figures["regret"] == 0.0 and figures["found"] == "win"
    assert {k: figures[k] for k in ("tied_set", "found_in_tied_set", "regret_vs_tied", "found_vs_winner")} \
        == dict.fromkeys(("tied_set", "found_in_tied_set", "regret_vs_tied", "found_vs_winner"))


STUDY = study_toml(study={"name": "fake-questions", "data": "embedded"}, search={"sampler": "grid"},
                   space={"arch": "residual", "blocks": [2, 4], "channels": [8, 16], "lr": [1e-3, 2e-3],
                          "eta_min": 1e-6},
                   train={"epochs": 8, "patience": 8},
                   pruner={"kind": "halving", "grace_period": 1, "reduction_factor": 2},
                   questions={"choose_at": 2, "depth": {"vary": "blocks", "fixed": {"channels": 16}},
                              "width": {"vary": "channels", "fixed": {"blocks": 4}}})


def _recorded(epochs: int = 8) -> dict:
    """A curves file of STUDY's 8 configs: deeper and wider are better by ~0.5 dB, lr 1e-3 by a little,
    at every epoch (no crossing), each config's images jittered by its own +-1%."""
    from search.study import parse_study
    study = parse_study(STUDY, "fake-questions", "fake-questions")
    configs = {}
    for n, point in enumerate(study.grid()):
        base = 1e-3 * (1 - 0.1 * (point["blocks"] == 4) - 0.1 * (point["channels"] == 16)
                       + 0.02 * (point["lr"] == 2e-3))
        jitter = tuple(0.01 * ((n * 7 + i * 3) % 5 - 2) / 2 for i in range(8))
        images = [_images(base * (1.5 - 0.5 * e / epochs), jitter) for e in range(1, epochs + 1)]
        configs[study.trial_config(point).run_name] = {
            **{k: point[k] for k in ("arch", "blocks", "channels", "lr")}, "status": "completed",
            "flops_per_image": point["blocks"] * point["channels"], "val_mse": [sum(i) / len(i) for i in images],
            "val_psnr": [0.0] * epochs, "seconds": [1.0] * epochs,
            "val_mse_images": [[round(v * IMAGE_SCALE) for v in i] for i in images]}
    return {"study": "fake-questions", "study_text": STUDY, "seed": 0, "epochs": epochs, "configs": configs}


def test_the_study_schedule_is_replayed_with_and_without_its_questions_and_their_directions_match_the_grid():
    recorded = _recorded()
    name = "study: halving r1 eta2"
    rows = replay_file(Path("fake.json.gz"), [1], {name, f"{name} +questions@2"}, recorded)
    plain, asked = rows
    assert plain["schedule"] == name and asked["schedule"] == f"{name} +questions@2"
    assert "questions" not in plain and "directions_match" not in plain
    # every step finds what the full grid finds, beyond noise: deeper and wider are better
    assert asked["directions_match"] == [2, 2]
    steps = {q["name"]: q["steps"] for q in asked["questions"]}
    assert [(s["low"], s["high"], s["found"], s["grid"]) for s in steps["depth"]] == [(2, 4, "+", "+")]
    assert [(s["low"], s["high"], s["found"], s["grid"]) for s in steps["width"]] == [(8, 16, "+", "+")]
    assert all(s["found_gain"]["low"] > 0 for q in asked["questions"] for s in q["steps"])
    # each point is answered by its best lr (1e-3), as the full grid does
    assert all(p["found"] == p["grid"] and "lr0.001_" in p["grid"] for q in asked["questions"] for p in q["points"])
    assert asked["questions_compute_fraction"] == pytest.approx(asked["compute_fraction"] - plain["compute_fraction"])
    assert asked["questions_compute_fraction"] > 0 and asked["regret"] == plain["regret"] == 0.0
    assert plain["tied_set"][0] == plain["winner"] and plain["found_in_tied_set"]


def test_a_question_point_the_schedule_never_finished_is_a_missing_direction():
    from search.questions import Question, Questions
    # two widths at one depth: the schedule trained the narrow one 1 epoch only
    curves = [_flat(n, final, NOISE) for n, final in (("narrow", 1.2), ("wide", 1.0))]
    curves[0].config, curves[1].config = {"blocks": 1, "channels": 8}, {"blocks": 1, "channels": 16}
    outcome = Outcome({"narrow": 1, "wide": 4}, {"narrow": "pruned", "wide": "finished"}, 5.0)
    questions = Questions((Question("width", "channels", fixed=(("blocks", 1),)),))
    answered = answer_questions(curves, outcome, questions, {"blocks": [1], "channels": [8, 16]})
    (step,) = answered["questions"][0]["steps"]
    assert step["grid"] == "+" and step["found"] == "missing" and not step["match"]
    assert answered["directions_match"] == [0, 1] and answered["questions"][0]["left_out"] == [
        {"channels": 8, "blocks": 1}]


def test_the_residual_questions_map_onto_the_proxy_space_by_index():
    from search.study import load_study
    proxy = Path(__file__).parents[3] / "search" / "bench" / "curves" / "residual-proxy.toml"
    recorded = {"study": "residual-proxy", "study_text": proxy.read_text(), "seed": 0}
    study = _recorded_study(recorded)
    own = own_study(recorded, study)
    questions = {q.name: q for q in own.questions.items}
    assert questions["depth"].vary == "blocks" and dict(questions["depth"].fixed) == {"channels": 44}  # 712 -> 44
    assert questions["width"].vary == "channels" and dict(questions["width"].fixed) == {"blocks": 6}  # 24 -> 6
    assert own.questions.choose_at == 12 and (own.pruner.grace_period, own.pruner.reduction_factor) == (3, 4)
    names = [s.name for s in schedules(study, 75, own)]
    assert "study: halving r3 eta4 +best/blocks" in names
    assert "study: halving r3 eta4 +best/blocks +questions@12" in names
    asked = next(s for s in schedules(study, 75, own) if s.questions is not None)
    assert asked.questions is own.questions and asked.insure_by == "blocks"
    # any fixed value maps by its index: the real grid's 2nd width is the proxy's 2nd
    real = load_study("residual")
    moved = map_questions(real.questions, real.space, study.space)
    assert [dict(q.fixed) for q in moved.items] == [{"channels": 44}, {"blocks": 6}]
    assert study.space["channels"][real.space["channels"].index(128)] == 8



def test_the_lr_choice_table_counts_points_chosen_right_by_best_so_far_and_by_the_epoch_s_value():
    from search.bench.lr_choice import lr_choice
    # one point, two lrs: lr 1 dips at epoch 2 then wins; lr 2 leads at epochs 1-2 by its value there
    configs = {"a": {"arch": "residual", "blocks": 1, "channels": 8, "lr": 1, "val_mse": [0.9, 0.5, 0.8, 0.3]},
               "b": {"arch": "residual", "blocks": 1, "channels": 8, "lr": 2, "val_mse": [0.8, 0.7, 0.6, 0.6]}}
    out = lr_choice("c.json", {"configs": configs, "epochs": 4, "study": "s", "seed": 0})
    by = {(r["epoch"], r["by"]): r for r in out["rows"]}
    assert by[(1, "best so far")]["right"] == 0 and by[(2, "best so far")]["right"] == 1
    assert by[(3, "value at the epoch")]["right"] == 0 and by[(3, "best so far")]["right"] == 1
    assert by[(1, "best so far")]["mean_loss_db"] == pytest.approx(10 * math.log10(0.6 / 0.3))
    single = {"a": configs["a"]}
    assert lr_choice("c.json", {"configs": single, "epochs": 4, "study": "s", "seed": 0}) is None
