"""CSG's applications the paper's way, with the power to tell (issue 28).

For each STD/CSG model pair on the hard 10-class data (the 3 seeds of
``bench_csg_length.py``'s longest runs, ``benchmarks/results/models/csg_hard/``):

1. **An attack pool** past the test split: ``make_examples(split="test", start=1200, ...)``
   of the same generator and seed (so never an image the models were chosen on), sized so
   that after keeping only *successful* attacks every class still has ``TRAIN`` detector
   training and ``TEST`` test images (FGSM / PGD 300 / 100, CW 200 / 100); the
   all-attacked variant (failed attacks kept, as before) is reported beside it.
   Attacks are targeted at a random other class (App. I says "non-targeted" but describes
   random targets; we keep the targeted reading and say so).
2. **CW** with 50 iterations and ``c`` chosen per model from {0.1, 1, 10} on 200 validation
   images: the highest success rate, ties to the smaller ``c``.
3. **Detection error** (random forest, as ``adversarial.detection_error``) with both feature
   sites (``block``: post-activation block outputs and the gated layer; ``raw_conv``: every
   Conv2D), 5 draws per pair. The unit is the pair: the draws are averaged within a pair,
   then a 95% t interval (2 degrees of freedom) of the mean STD − CSG difference over the
   3 pairs; per pair, a bootstrap over its test images of the same difference (draw 0).
4. **Black box in the paper's regime**: the one-pixel (generations) and local-search
   (rounds) budgets are the smallest of a ladder whose success on 100 of the STD model's
   *validation* images lies in [10%, 50%] (the rule; the budgets are recorded); then both
   models are attacked on ``BLACK_BOX_IMAGES`` test images both classify correctly, with
   Wilson 95% intervals and an exact McNemar test on those paired outcomes.

Writes ``benchmarks/results/csg_detection.json`` after each finished (pair, part) and skips
them on restart.

    python benchmarks/bench_csg_detection.py               # the 3 pairs (~45 min on 2 cores)
    python benchmarks/bench_csg_detection.py --summary     # the tables from the JSON
    python benchmarks/bench_csg_detection.py --quick       # tiny models, to check the script
"""
import argparse
import glob
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import numpy as np  # noqa: E402

import bench_common  # noqa: E402

RESULTS = os.path.join(HERE, "results", "csg_detection.json")
PAIRS = os.path.join(HERE, "results", "models", "csg_hard", "*_e90_seed*")
NEED = {"fgsm": (300, 100), "pgd": (300, 100), "cw": (200, 100)}
SITES = ("block", "raw_conv")
ATTACKS = ("fgsm", "pgd", "cw")
CW_CS = (0.1, 1.0, 10.0)
ONE_PIXEL_LADDER = (1, 2, 5, 10, 20, 40)      # generations (population 64, 1 pixel)
LOCAL_SEARCH_LADDER = (1, 2, 3, 5, 10, 20)    # rounds (5 pixels each)
BLACK_BOX_IMAGES = 300
DATA = dict(num_classes=10, image_size=64, synthetic_config="hard", test_start=1200)
POOL = 40000  # FGSM's success differs by class (as low as 15% on some: 2,600 images per class
# for 400 successes); the pool is generated chunk by chunk and only features are kept
CHUNK = 500  # each attack runs on the pool in chunks until every class has enough successes
# (CW at 50 iterations is the cost centre: ~0.15 s per image on 2 cores)


def load():
    return bench_common.load_json(RESULTS, {"machine": bench_common.machine(), "pairs": {},
                                            "protocol": __doc__.split("\n\n")[1]})


def save(state, *paths):
    """Write the parts of ``state`` at ``paths`` (key tuples under ``state``, e.g.
    ``("pairs", "bench_e90_seed0", "STD", "attacks", "cw")``) into the results file, whose
    other contents are kept as they are on disk: several processes (one per pair, or per
    ``--attacks`` of a pair) write only the parts each finished, never a stale copy of the
    others'. Under a file lock."""
    import fcntl

    with open(RESULTS + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = load()
        for path in paths:
            source, target = state, disk
            for key in path[:-1]:
                source, target = source[key], target.setdefault(key, {})
            target[path[-1]] = source[path[-1]]
        bench_common.save_json(RESULTS, disk)


def images_of(split, n, seed, start=0):
    from keras_icnn.data import synthetic_parts

    look = synthetic_parts.synthetic_config(DATA["synthetic_config"])
    ex = synthetic_parts.make_examples(n, image_size=DATA["image_size"],
                                       num_classes=DATA["num_classes"], seed=seed, split=split,
                                       start=start, **look)
    return ex["image"].astype(np.float32), ex["label"]


def choose_cw_c(model, images, labels, targets):
    from keras_icnn import adversarial

    rates = {}
    for c in CW_CS:
        adv = adversarial.cw_l2(model, images, labels, targets=targets, iterations=50, c=c)
        rates[c] = adversarial.success_rate(model, images, adv, labels, targets)
    best = max(CW_CS, key=lambda c: (rates[c], -c))
    return best, {str(c): r for c, r in rates.items()}


class Pool:
    """The attack pool, generated chunk by chunk (never held whole): example ``i`` is test
    example ``test_start + i`` of the models' generator and seed, its label, and a random
    other class as target — the same whatever the chunking (the targets' shifts are drawn
    once for the whole pool: ``adversarial.random_targets`` of the first n images)."""

    def __init__(self, seed, size):
        self.seed, self.size = int(seed), int(size)
        self.shift = np.random.default_rng(seed).integers(1, DATA["num_classes"], size=size)

    def chunk(self, start, n):
        images, labels = images_of("test", n, self.seed, start=DATA["test_start"] + start)
        return images, labels, (labels + self.shift[start:start + n]) % DATA["num_classes"]


def attack_until_enough(attack, pool, need, per_class, features, log=None):
    """Attack ``pool`` in chunks of ``CHUNK`` until every class has ``need`` successful
    attacks and the all-attacked set (the shortest prefix with ``per_class`` images of
    every class) is attacked, or the pool ends. Past that prefix only the images of classes
    still short of successes are attacked (which images of a class are attacked does not
    depend on the images, so the success-only set is not biased; CW's cost is per image).

    Returns a dict of the attacked images' pool ``index``, ``label``, ``won``, ``prefix``
    (the all-attacked prefix length, None if never reached) and, per feature site, ``clean``
    and ``adversarial`` features (``features(images)`` -> {site: [n, d]})."""
    parts = {"index": [], "label": [], "won": [], "clean": [], "adversarial": []}
    successes = np.zeros(10, int)
    prefix, n, t0 = None, 0, time.time()
    while n < pool.size:
        x, y, t = pool.chunk(n, min(CHUNK, pool.size - n))
        index = np.arange(n, n + len(x))
        n += len(x)
        keep = successes[y] < need
        if prefix is None:  # every image so far was attacked: the pool's first n labels
            prefix = all_attacked_prefix(np.concatenate(parts["label"] + [y]), per_class)
            keep |= index < (prefix or n)
        if keep.any():
            x, y, t, index = x[keep], y[keep], t[keep], index[keep]
            adv = attack(x, y, t)
            won = np.asarray(attack.succeeded(x, adv, y, t), bool)
            successes += np.bincount(y[won], minlength=10)
            for key, value in (("index", index), ("label", y), ("won", won),
                               ("clean", features(x)), ("adversarial", features(adv))):
                parts[key].append(value)
        if log:
            log(f"{n} of the pool seen, {sum(map(len, parts['index']))} attacked, fewest "
                f"successes {successes.min()} / {need} ({time.time() - t0:.0f} s)")
        if prefix is not None and successes.min() >= need:
            break
    out = {key: np.concatenate(parts[key]) for key in ("index", "label", "won")}
    out["prefix"] = prefix
    for key in ("clean", "adversarial"):
        out[key] = {site: np.concatenate([f[site] for f in parts[key]])
                    for site in parts[key][0]}
    return out


def all_attacked_prefix(labels, per_class):
    """The shortest prefix of the pool with ``per_class`` images of every class (the same
    images for both models, so the all-attacked comparison is paired); None if none."""
    counts = np.zeros(10, int)
    for i, y in enumerate(labels):
        counts[y] += 1
        if counts.min() >= per_class:
            return i + 1
    return None


def _unfinished(row, pool_size):
    """A row of an earlier run that stopped at a smaller pool without enough successes."""
    return ("skipped" in row.get("success_only", {})
            and row.get("pool_seen", row["attacked"]) < pool_size)


def attack_and_detect(state, key, model, name, pool, val, seed, attacks=ATTACKS):
    """``attacks`` on the pool, both feature sites, success-only and all-attacked; saves
    after each attack and skips the attacks already in ``state``."""
    from keras_icnn import adversarial

    out = state["pairs"].setdefault(key, {}).setdefault(name, {"attacks": {}})
    if "cw_c" not in out:
        t0 = time.time()
        out["cw_c"], out["cw_c_rates"] = choose_cw_c(model, *val)
        out["cw_c_seconds"] = round(time.time() - t0, 1)
        print(f"  {name} CW c = {out['cw_c']} ({out['cw_c_rates']}, {out['cw_c_seconds']} s)",
              flush=True)
        save(state, *[("pairs", key, name, part) for part in ("cw_c", "cw_c_rates",
                                                              "cw_c_seconds")])
    c = out["cw_c"]

    def features(x):
        return {site: adversarial.conv_features(model, x, where=site) for site in SITES}

    for attack in attacks:
        if attack in out["attacks"] and not _unfinished(out["attacks"][attack], pool.size):
            print(f"  {name} {attack}: done, skipped")
            continue
        t0 = time.time()
        if attack == "fgsm":
            def run(x, y, t):
                return adversarial.fgsm(model, x, y, 0.031, targets=t)
        elif attack == "pgd":
            def run(x, y, t):
                return adversarial.pgd(model, x, y, 0.031, 0.0078, 7, targets=t, seed=seed)
        else:
            def run(x, y, t):
                return adversarial.cw_l2(model, x, y, targets=t, iterations=50, c=c)
        run.succeeded = lambda x, a, y, t: adversarial.attack_succeeded(model, x, a, y, t)
        train_n, test_n = NEED[attack]
        got = attack_until_enough(run, pool, train_n + test_n, train_n + test_n, features,
                                  log=lambda m: print(f"    {name} {attack}: {m}", flush=True))
        labels, won = got["label"], got["won"]
        prefix = got["prefix"] or len(labels)  # the prefix is attacked whole: its first rows
        row = {"attacked": len(labels), "success_rate": float(won.mean()),
               "success_rate_on_prefix": float(won[:prefix].mean()),
               "successes_per_class": np.bincount(labels[won], minlength=10).tolist(),
               "all_attacked_images": prefix, "pool_seen": int(got["index"][-1]) + 1}
        for variant, idx in (("success_only", np.flatnonzero(won)),
                             ("all_attacked", np.arange(prefix))):
            per_class = np.bincount(labels[idx], minlength=10)
            if per_class.min() < train_n + test_n:
                row[variant] = {"skipped": f"smallest class has {per_class.min()} < "
                                           f"{train_n} + {test_n} images (pool of "
                                           f"{len(labels)})"}
                continue
            row[variant] = {site: adversarial.detection_error(
                got["clean"][site][idx], got["adversarial"][site][idx], labels[idx], train_n,
                test_n, repeats=5, seed=seed, per_image=True) for site in SITES}
            for site in SITES:  # pool indices, so a paired bootstrap can check them
                for draw in row[variant][site]["per_image"]:
                    draw["index"] = got["index"][idx[np.asarray(draw["index"], int)]].tolist()
        row["seconds"] = round(time.time() - t0, 1)
        out["attacks"][attack] = row
        save(state, ("pairs", key, name, "attacks", attack))
        print(f"  {name} {attack}: {len(labels)} attacked, success {row['success_rate']:.3f} "
              f"({row['seconds']} s)", flush=True)
    return out


def choose_budget(kind, model, images, labels, seed):
    from keras_icnn import adversarial

    ladder = ONE_PIXEL_LADDER if kind == "one_pixel" else LOCAL_SEARCH_LADDER
    tried = {}
    for budget in ladder:
        adv = (adversarial.one_pixel(model, images, labels, generations=budget, seed=seed)
               if kind == "one_pixel" else
               adversarial.local_search(model, images, labels, rounds=budget, seed=seed))
        rate = adversarial.success_rate(model, images, adv, labels)
        tried[str(budget)] = rate
        if 0.10 <= rate <= 0.50:
            return budget, tried
        if rate > 0.50:  # the ladder jumped past the window: the last budget below it
            break
    below = [b for b in ladder if str(b) in tried and tried[str(b)] < 0.10]
    return (below[-1] if below else ladder[0]), tried


def black_box(models, images, labels, val_images, val_labels, seed):
    from keras_icnn import adversarial
    from keras_icnn.metrics import stats

    std, csg = models["STD"], models["CSG"]
    correct_val = np.flatnonzero(adversarial.probabilities(std, val_images).argmax(-1)
                                 == val_labels)[:100]
    both = np.flatnonzero((adversarial.probabilities(std, images).argmax(-1) == labels)
                          & (adversarial.probabilities(csg, images).argmax(-1) == labels))
    both = both[:BLACK_BOX_IMAGES]
    out = {"images": int(len(both))}
    for kind in ("one_pixel", "local_search"):
        budget, tried = choose_budget(kind, std, val_images[correct_val],
                                      val_labels[correct_val], seed)
        fooled = {}
        for name, model in models.items():
            x, y = images[both], labels[both]
            adv = (adversarial.one_pixel(model, x, y, generations=budget, seed=seed)
                   if kind == "one_pixel" else
                   adversarial.local_search(model, x, y, rounds=budget, seed=seed))
            fooled[name] = adversarial.probabilities(model, adv).argmax(-1) != y
        out[kind] = {"budget": budget, "budget_rule": "smallest of the ladder with STD's "
                     "validation success in [10%, 50%]", "tried_on_std_validation": tried,
                     **{name: stats.wilson_interval(int(f.sum()), len(f))
                        for name, f in fooled.items()},
                     "mcnemar": stats.mcnemar_exact(fooled["STD"], fooled["CSG"])}
        print(f"  {kind} (budget {budget}): STD {fooled['STD'].mean():.3f}, "
              f"CSG {fooled['CSG'].mean():.3f}", flush=True)
    return out


def load_pair(pair_dir):
    import keras

    key = os.path.basename(pair_dir.rstrip("/"))
    models = {"STD": keras.saving.load_model(os.path.join(pair_dir, "baseline.keras")),
              "CSG": keras.saving.load_model(os.path.join(pair_dir, "csg.keras"))}
    return key, int(key.rsplit("seed", 1)[1]), models


def run_detection(state, pair_dir, quick=False, attacks=ATTACKS):
    """Each attack on both models of the pair before the next attack (so an interrupted run
    leaves whole STD/CSG comparisons)."""
    from keras_icnn import adversarial

    key, seed, models = load_pair(pair_dir)
    pool = Pool(seed, 600 if quick else POOL)
    val_images, val_labels = images_of("validation", 200, seed)
    val_targets = adversarial.random_targets(val_labels, DATA["num_classes"], seed + 1)
    for attack in attacks:
        for name, model in models.items():
            print(f"== {key} {name} {attack}: on a pool of up to {pool.size} images", flush=True)
            attack_and_detect(state, key, model, name, pool,
                              (val_images, val_labels, val_targets), seed, [attack])


def run_black_box(state, pair_dir, quick=False):
    key, seed, models = load_pair(pair_dir)
    entry = state["pairs"].setdefault(key, {})
    if "black_box" in entry:
        print(f"== {key} black box: done, skipped")
        return
    print(f"== {key} black box", flush=True)
    val_images, val_labels = images_of("validation", 200, seed)
    test, test_labels = images_of("test", 1200 if not quick else 200, seed)
    entry["black_box"] = black_box(models, test, test_labels, val_images, val_labels, seed)
    save(state, ("pairs", key, "black_box"))


def _bootstrap_difference(ea, eb, paired, repeats=1000, seed=0):
    """95% bootstrap interval of mean(ea) - mean(eb) over test images: paired when both
    detectors were tested on the same pool images (all-attacked: the same prefix), else
    each model's images resampled on their own (success-only keeps different images)."""
    from keras_icnn.metrics import stats

    if paired:
        return stats.bootstrap_interval(lambda i: ea[i].mean() - eb[i].mean(), len(ea),
                                        repeats=repeats, seed=seed)
    rng = np.random.default_rng(seed)
    draws = [ea[rng.integers(0, len(ea), len(ea))].mean()
             - eb[rng.integers(0, len(eb), len(eb))].mean() for _ in range(repeats)]
    low, high = np.quantile(draws, [0.025, 0.975])
    return {"estimate": float(ea.mean() - eb.mean()), "low": float(low), "high": float(high)}


def summary(state):
    from keras_icnn.metrics import stats

    from keras_icnn.reporting.tables import table

    pairs = sorted(state["pairs"])
    lines = [f"Pairs: {', '.join(pairs)}", ""]
    white = []
    for site in SITES:
        for variant in ("success_only", "all_attacked"):
            for attack in ("fgsm", "pgd", "cw"):
                diffs, std_e, csg_e, boots = [], [], [], []
                for p in pairs:
                    try:
                        s = state["pairs"][p]["STD"]["attacks"][attack][variant][site]
                        c = state["pairs"][p]["CSG"]["attacks"][attack][variant][site]
                    except (KeyError, TypeError):
                        continue
                    std_e.append(s["mean"])
                    csg_e.append(c["mean"])
                    diffs.append(s["mean"] - c["mean"])
                    a, b = s["per_image"][0], c["per_image"][0]
                    ea = (np.array(a["clean_wrong"], float)
                          + np.array(a["adversarial_wrong"], float)) / 2
                    eb = (np.array(b["clean_wrong"], float)
                          + np.array(b["adversarial_wrong"], float)) / 2
                    r = _bootstrap_difference(ea, eb, paired=a["index"] == b["index"])
                    boots.append(f"{100 * r['low']:+.2f}..{100 * r['high']:+.2f}")
                if not diffs:
                    continue
                ci = stats.t_interval(diffs) if len(diffs) >= 2 else None
                interval = (f"{100 * ci['mean']:+.2f} [{100 * ci['low']:+.2f}, "
                            f"{100 * ci['high']:+.2f}] pt" if ci else "one pair")
                white.append([site, variant, attack.upper(), f"{100 * np.mean(std_e):.2f}%",
                              f"{100 * np.mean(csg_e):.2f}%", interval, "; ".join(boots)])
    lines.append(table(["features", "counting", "attack", "STD error", "CSG error",
                        "STD − CSG, 95% t interval over pairs",
                        "per-pair 95% bootstrap over test images (draw 0; paired when "
                        "all-attacked)"], white))
    black = []
    for p in pairs:
        bb = state["pairs"][p].get("black_box")
        if not bb:
            continue
        for kind in ("one_pixel", "local_search"):
            r = bb[kind]
            cell = lambda w: f"{100 * w['rate']:.1f}% [{100 * w['low']:.1f}, {100 * w['high']:.1f}]"  # noqa: E731
            black.append([p, kind, r["budget"], cell(r["STD"]), cell(r["CSG"]),
                          f"{r['mcnemar']['p_value']:.3g} ({r['mcnemar']['a_only']} / "
                          f"{r['mcnemar']['b_only']})"])
    lines += ["", table(["pair", "attack", "budget", "STD success [95%]", "CSG success [95%]",
                         "McNemar p (STD-only / CSG-only)"], black)]
    return "\n".join(lines)


def _outcomes(m):
    """Paired outcome arrays with McNemar's counts ``m`` (to pool pairs' discordant images)."""
    order = (("a_only", 1, 0), ("b_only", 0, 1), ("both", 1, 1), ("neither", 0, 0))
    a = np.concatenate([np.full(m[k], x, bool) for k, x, _ in order])
    b = np.concatenate([np.full(m[k], y, bool) for k, _, y in order])
    return a, b


def headline(state, site="block", variant="success_only"):
    """The figures ``make bench`` shows: per detection attack the STD and CSG error (mean
    over pairs) and the 95% t interval of STD − CSG over pairs; per black-box attack both
    success rates pooled over the pairs' images and an exact McNemar test on the pooled
    paired outcomes. Only pairs that finished a part count; ``pairs`` says how many."""
    from keras_icnn.metrics import stats

    out = {"detection": {}, "black_box": {}, "site": site, "variant": variant}
    for attack in ("fgsm", "pgd", "cw"):
        std, csg = [], []
        for entry in state["pairs"].values():
            try:
                s = entry["STD"]["attacks"][attack][variant][site]["mean"]
                c = entry["CSG"]["attacks"][attack][variant][site]["mean"]
            except (KeyError, TypeError):
                continue
            std.append(s)
            csg.append(c)
        if std:
            diff = np.subtract(std, csg)
            out["detection"][attack] = {
                "pairs": len(std), "std": float(np.mean(std)), "csg": float(np.mean(csg)),
                "difference": stats.t_interval(diff) if len(diff) >= 2 else None}
    for kind in ("one_pixel", "local_search"):
        rows = [e["black_box"][kind] for e in state["pairs"].values()
                if kind in e.get("black_box", {})]
        if not rows:
            continue
        a, b = map(np.concatenate, zip(*(_outcomes(r["mcnemar"]) for r in rows)))
        out["black_box"][kind] = {"pairs": len(rows), "images": int(len(a)),
                                  "budgets": [r["budget"] for r in rows],
                                  "std": stats.wilson_interval(int(a.sum()), len(a)),
                                  "csg": stats.wilson_interval(int(b.sum()), len(b)),
                                  "mcnemar": stats.mcnemar_exact(a, b)}
    return out


def main():
    global RESULTS, BLACK_BOX_IMAGES, NEED
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default=PAIRS, help="glob of the model-pair directories")
    p.add_argument("--summary", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="train a tiny pair into --work_dir and run a small protocol on it")
    p.add_argument("--work_dir", default="/tmp/keras_icnn_csg_detection")
    p.add_argument("--attacks", default=",".join(ATTACKS),
                   help="comma-separated detection attacks to run (of fgsm,pgd,cw)")
    p.add_argument("--black_box", default=True, action=argparse.BooleanOptionalAction,
                   help="run the black-box part after detection")
    args = p.parse_args()
    if args.quick:
        import bench_csg_hard

        RESULTS = os.path.join(args.work_dir, "csg_detection_quick.json")
        BLACK_BOX_IMAGES, NEED = 20, {k: (10, 5) for k in NEED}
        pair = os.path.join(args.work_dir, "bench_e90_seed0")
        if not os.path.exists(os.path.join(pair, "csg.keras")):
            r = bench_csg_hard.train_pair(0, args.work_dir, quick=True, verbose=0)
            os.makedirs(pair, exist_ok=True)
            for name, path in (("baseline.keras", r["models"]["std"]),
                               ("csg.keras", r["models"]["csg"])):
                os.replace(path, os.path.join(pair, name))
        args.pairs = pair
    state = load()
    if not args.summary:
        pairs = sorted(glob.glob(args.pairs))
        attacks = [a for a in args.attacks.split(",") if a]
        unknown = sorted(set(attacks) - set(ATTACKS))
        if unknown:
            p.error(f"--attacks: unknown {unknown}; expected some of {list(ATTACKS)}")
        for pair in pairs:  # detection on every pair first: it is what needs 3 pairs
            run_detection(state, pair, args.quick, attacks)
        for pair in pairs if args.black_box else ():
            run_black_box(state, pair, args.quick)
    table = summary(state)
    if not args.quick:
        with open(os.path.splitext(RESULTS)[0] + ".md", "w") as f:
            f.write("`python benchmarks/bench_csg_detection.py`\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
