"""The pruning audit's choice of trials (search.run.audit): spread over the rung ranking, best first."""
import math

import pytest

from search.run.audit import Pruned, audit_config, picks, rung_ranking, spread


def pruned(name: str, stopped_at: int, value: float) -> Pruned:
    return Pruned(f"run-{name}", name, f"trial-{name}", stopped_at, value, {"blocks": 1})


@pytest.mark.parametrize("n,k,expected", [
    (6, 2, [0, 5]),  # the best and the worst
    (6, 1, [0]),  # one: the near-miss
    (7, 3, [0, 3, 6]),
    (10, 4, [0, 3, 6, 9]),
    (3, 5, [0, 1, 2]),  # fewer pruned than asked: all of them
    (0, 2, []),
    (5, 0, []),
])
def test_spread_takes_both_ends_and_evenly_between(n, k, expected):
    assert spread(n, k) == expected


def test_spread_never_repeats_a_position():
    for n in range(1, 40):
        for k in range(1, n + 1):
            positions = spread(n, k)
            assert len(set(positions)) == len(positions) == k and positions[0] == 0
            assert positions == sorted(positions) and positions[-1] == (n - 1 if k > 1 else 0)


def test_a_later_rung_ranks_above_an_earlier_one_then_the_value_decides():
    trials = [pruned("a", 1, 0.01), pruned("b", 2, 0.05), pruned("c", 1, 0.02), pruned("d", 2, 0.03),
              pruned("e", 1, math.nan)]
    assert [p.name for p in rung_ranking(trials, "min")] == ["d", "b", "a", "c", "e"]
    assert [p.name for p in rung_ranking(trials, "max")] == ["b", "d", "c", "a", "e"]


def test_picks_are_ranked_from_one_and_the_config_carries_the_run_tags():
    trials = [pruned("a", 1, 0.01), pruned("b", 2, 0.05), pruned("c", 1, 0.02)]
    chosen = picks(trials, 2, "min")
    assert [(rank, p.name) for rank, p in chosen] == [(1, "b"), (3, "c")]
    config = audit_config(3, 3, chosen[1][1], "/ckpt/c")
    assert config["blocks"] == 1 and config["checkpoint"] == "/ckpt/c" and config["source"] == "c"
    assert config["tags"] == {"audit.of": "run-c", "audit.stopped_at": "1", "audit.rank": "3", "audit.pruned": "3"}
