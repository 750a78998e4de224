"""The sampling rules of ``benchmarks/bench_csg_detection.py`` (issue 28), by hand: the
pool is attacked in chunks until every class has enough *successful* attacks, and the
all-attacked variant uses one fixed prefix, the same images for both models."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "benchmarks"))

import bench_csg_detection as bench  # noqa: E402


def test_all_attacked_prefix_is_the_shortest_with_enough_of_every_class():
    labels = np.array([0, 1, 1, 0, 2, 2, 0, 1, 2, 3] + list(range(10)) * 3)
    # Classes 3..9 first appear at index 9, then in each block of 10 after it.
    assert bench.all_attacked_prefix(labels, 1) == 20  # class 4..9 only from index 14..19
    assert bench.all_attacked_prefix(labels, 3) == 40
    assert bench.all_attacked_prefix(labels, 9) is None  # never enough


class _Pool:
    """100 images, 10 of each class; image i is the number i."""
    size = 100

    def chunk(self, start, n):
        labels = np.arange(start, start + n) % 10
        return np.arange(start, start + n, dtype=np.float32)[:, None], labels, labels


def test_attack_until_enough_attacks_only_short_classes_past_the_prefix(monkeypatch):
    monkeypatch.setattr(bench, "CHUNK", 20)
    calls = []

    def attack(x, y, t):
        calls.append(len(x))
        return x + 0.5

    # Every third image succeeds.
    attack.succeeded = lambda x, a, y, t: (x[:, 0].astype(int) % 3) == 0
    features = lambda x: {"site": np.concatenate([x, -x], 1)}  # noqa: E731
    got = bench.attack_until_enough(attack, _Pool(), need=2, per_class=1, features=features)
    # By hand: image i succeeds when i % 3 == 0 and is of class i % 10. After the first
    # chunk (0..19: successes 0, 3, ..., 18) classes 0, 2, 3, 5, 6, 8, 9 have one success;
    # the second chunk (20..39) is attacked whole (every class is short of 2) and brings
    # 21, 24, ..., 39: classes 0, 3, 6, 9 have 2. The third chunk (40..59) is past the
    # all-attacked prefix (1 of every class: 10 images), so only its images of the classes
    # still short (1, 2, 4, 5, 7, 8: 12 images) are attacked; 42, 45, ..., 57 complete
    # them, and no fourth chunk is attacked.
    short = np.arange(40, 60)[np.isin(np.arange(40, 60) % 10, [1, 2, 4, 5, 7, 8])]
    attacked = np.concatenate([np.arange(40), short])
    assert calls == [20, 20, 12]
    assert got["prefix"] == 10
    np.testing.assert_array_equal(got["index"], attacked)
    np.testing.assert_array_equal(got["label"], attacked % 10)
    np.testing.assert_array_equal(got["won"], attacked % 3 == 0)
    np.testing.assert_array_equal(got["clean"]["site"][:, 1], -attacked)
    np.testing.assert_array_equal(got["adversarial"]["site"][:, 0], attacked + 0.5)
    # The all-attacked prefix (5 of every class: the first 50 images) is attacked even
    # when no successes are needed, and nothing past it.
    calls.clear()
    got = bench.attack_until_enough(attack, _Pool(), need=0, per_class=5, features=features)
    assert calls == [20, 20, 10] and got["prefix"] == 50
    np.testing.assert_array_equal(got["index"], np.arange(50))
    # A pool without enough successes (class 7's 5th would be image 147) is attacked to its end.
    # (and with at most 4 successes per class no class is ever complete: all 100 attacked).
    got = bench.attack_until_enough(attack, _Pool(), need=5, per_class=1, features=features)
    assert len(got["won"]) == 100


def test_the_pool_is_the_same_whatever_the_chunking():
    pool = bench.Pool(seed=3, size=40)
    whole = pool.chunk(0, 40)
    parts = [pool.chunk(0, 15), pool.chunk(15, 25)]
    for i in range(3):
        np.testing.assert_array_equal(whole[i], np.concatenate([p[i] for p in parts]))
    # The targets are adversarial.random_targets of the pool's labels: another class.
    from keras_icnn import adversarial

    np.testing.assert_array_equal(whole[2], adversarial.random_targets(whole[1], 10, seed=3))
    assert np.all(whole[2] != whole[1])


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


def test_save_writes_only_its_parts_and_keeps_the_others_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", str(tmp_path / "r.json"))
    # Two processes loaded the file when both pairs' fgsm rows were stale (1).
    a, b = bench.load(), bench.load()
    for state in (a, b):
        state["pairs"] = {"p0": {"STD": {"attacks": {"fgsm": 1}}},
                          "p1": {"STD": {"attacks": {"fgsm": 1}}}}
    bench.save(a, ("pairs", "p0"), ("pairs", "p1"))
    a["pairs"]["p0"]["STD"]["attacks"]["fgsm"] = 2      # process a redoes p0's fgsm
    bench.save(a, ("pairs", "p0", "STD", "attacks", "fgsm"))
    b["pairs"]["p1"]["STD"]["attacks"]["cw"] = 3        # process b finishes p1's cw
    b["pairs"]["p1"]["black_box"] = 4
    bench.save(b, ("pairs", "p1", "STD", "attacks", "cw"), ("pairs", "p1", "black_box"))
    # b's stale copy of p0 did not overwrite a's new row.
    assert bench.load()["pairs"] == {"p0": {"STD": {"attacks": {"fgsm": 2}}},
                                     "p1": {"STD": {"attacks": {"fgsm": 1, "cw": 3}},
                                            "black_box": 4}}
