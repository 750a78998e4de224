"""The sampling rules of ``benchmarks/bench_csg_detection.py`` (issue 28), by hand: the
pool is attacked in chunks until every class has enough *successful* attacks, and the
all-attacked variant uses one fixed prefix, the same images for both models."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import bench_csg_detection as bench  # noqa: E402


def test_all_attacked_prefix_is_the_shortest_with_enough_of_every_class():
    labels = np.array([0, 1, 1, 0, 2, 2, 0, 1, 2, 3] + list(range(10)) * 3)
    # Classes 3..9 first appear at index 9, then in each block of 10 after it.
    assert bench.all_attacked_prefix(labels, 1) == 20  # class 4..9 only from index 14..19
    assert bench.all_attacked_prefix(labels, 3) == 40
    assert bench.all_attacked_prefix(labels, 9) == len(labels)  # never enough: the whole pool


def test_attack_until_enough_stops_at_the_first_chunk_with_enough_successes(monkeypatch):
    monkeypatch.setattr(bench, "CHUNK", 20)
    labels = np.tile(np.arange(10), 10)  # 100 images, 10 of each class
    pool = np.arange(100, dtype=np.float32)[:, None]
    calls = []

    def attack(x, y, t):
        calls.append(len(x))
        return x + 0.5

    # Every third image succeeds: class c succeeds at pool indices i = c (mod 10), i = 0 (mod 3).
    attack.succeeded = lambda x, a, y, t: (x[:, 0].astype(int) % 3) == 0
    adv, won = bench.attack_until_enough(attack, pool, labels, labels, need=2, prefix=0)
    # By hand: image i succeeds when i % 3 == 0, and is of class i % 10, so class c's
    # successes are i = x_c (mod 30) with x_c the one of c, c + 10, c + 20 divisible by 3:
    # x = 0, 21, 12, 3, 24, 15, 6, 27, 18, 9. The latest 2nd success is class 7's, at
    # 27 + 30 = 57: three chunks of 20 (60 images) are attacked, not a fourth.
    assert len(adv) == 60 and calls == [20, 20, 20]
    np.testing.assert_array_equal(adv[:, 0], pool[:60, 0] + 0.5)
    np.testing.assert_array_equal(won, np.arange(60) % 3 == 0)
    # The all-attacked prefix is always attacked, even when successes come sooner.
    _, won = bench.attack_until_enough(attack, pool, labels, labels, need=0, prefix=50)
    assert len(won) == 60
    # A pool without enough successes (class 7's 5th would be image 147) is attacked to its end.
    _, won = bench.attack_until_enough(attack, pool, labels, labels, need=5, prefix=0)
    assert len(won) == 100


def test_bootstrap_difference_pairs_only_the_same_images():
    ea = np.array([1, 0, 1, 0, 1, 0, 1, 0], float)
    paired = bench._bootstrap_difference(ea, ea.copy(), paired=True, repeats=200)
    # Identical per-image errors: every paired resample differs by exactly 0.
    assert paired["estimate"] == 0 and paired["low"] == 0 and paired["high"] == 0
    unpaired = bench._bootstrap_difference(ea, ea.copy(), paired=False, repeats=200)
    assert unpaired["estimate"] == 0 and unpaired["low"] < 0 < unpaired["high"]


def test_headline_averages_over_pairs_and_pools_the_black_box_by_hand():
    from scipy import stats as scipy_stats

    def pair(std, csg, counts):
        attacks = lambda e: {"fgsm": {"success_only": {"block": {"mean": e}}}}  # noqa: E731
        return {"STD": {"attacks": attacks(std)}, "CSG": {"attacks": attacks(csg)},
                "black_box": {"one_pixel": {"budget": 10, "mcnemar": counts}}}

    counts = [dict(a_only=6, b_only=1, both=3, neither=90),
              dict(a_only=4, b_only=2, both=0, neither=94)]
    state = {"pairs": {"a": pair(0.05, 0.03, counts[0]), "b": pair(0.04, 0.03, counts[1]),
                       "c": {"STD": {"attacks": {}}}}}  # unfinished: left out
    h = bench.headline(state)
    fgsm = h["detection"]["fgsm"]
    assert fgsm["pairs"] == 2 and np.isclose(fgsm["std"], 0.045) and np.isclose(fgsm["csg"], 0.03)
    half = scipy_stats.t.ppf(0.975, 1) * np.std([0.02, 0.01], ddof=1) / np.sqrt(2)
    assert np.isclose(fgsm["difference"]["low"], 0.015 - half)
    assert np.isclose(fgsm["difference"]["high"], 0.015 + half)
    bb = h["black_box"]["one_pixel"]
    # Pooled: STD fooled on 6 + 3 + 4 = 13 of 200 images, CSG on 1 + 3 + 2 = 6; discordant 10 / 3.
    assert bb["images"] == 200 and bb["std"]["successes"] == 13 and bb["csg"]["successes"] == 6
    assert (bb["mcnemar"]["a_only"], bb["mcnemar"]["b_only"]) == (10, 3)
    assert np.isclose(bb["mcnemar"]["p_value"], scipy_stats.binomtest(10, 13).pvalue)
