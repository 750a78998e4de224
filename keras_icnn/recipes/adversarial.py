"""CSG's applications (``trainers/detect_adversarial.py``): adversarial-sample detection
(CSG §5.2, Table 3) and black-box robustness (appendix J, Table 4) of saved models."""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_icnn import adversarial
from keras_icnn.config.choices import EVAL_SPLITS as SPLITS
from keras_icnn.config.flags import option
from keras_icnn.config.options import DataOptions
from keras_icnn.recipes.common import check_model_files, load_model_file, open_data, prepare_output
from keras_icnn.reporting import tables
from keras_icnn.reporting.outputs import write_config, write_json
from keras_icnn.validation import check_fields

WHITE_BOX = ("fgsm", "pgd", "cw")
BLACK_BOX = ("one_pixel", "local_search")


@dataclasses.dataclass
class DetectConfig(DataOptions):
    """Settings of ``trainers/detect_adversarial.py`` (data flags as the trainers')."""

    models: tuple = option((), "Comma-separated .keras files (e.g. std.keras,csg.keras).")
    names: tuple = option((), "Names of the models in the tables (default: file names).")
    eval_split: str = option("test", "Split whose images are attacked.", SPLITS,
                             aliases=("split",))
    attacks: tuple = option(WHITE_BOX, "White-box attacks for the detector: fgsm, pgd, cw.")
    features: tuple = option(("block",), "Detector features, one table each: block (the "
                                         "pooled post-activation output of every conv block "
                                         "and the gated layer) and/or raw_conv (every Conv2D "
                                         "output, before BatchNorm and the residual add).")
    black_box: tuple = option(BLACK_BOX, "Black-box attacks whose success rate is reported: "
                                         "one_pixel, local_search (empty: none).")
    train_per_class: tuple = option(("100",), "Detector training images per class (the paper: "
                                              "500,1000,2000).")
    test_per_class: int = option(100, "Detector test images per class (the paper: 100).")
    repeats: int = option(5, "Random train/test draws; the error is their mean and std.")
    targeted: bool = option(True, "Attack a random other class (false: untargeted).")
    eps: float = option(0.031, "L-infinity budget of FGSM and PGD on the [0, 1] scale.")
    pgd_step: float = option(0.0078, "PGD step on the [0, 1] scale.")
    pgd_iterations: int = option(7, "PGD iterations (the paper: 7).")
    cw_iterations: int = option(100, "CW-L2 Adam steps (the paper: 100).")
    cw_c: float = option(1.0, "CW-L2 constant c.")
    black_box_images: int = option(100, "Correctly classified images per black-box attack.")
    one_pixel_generations: int = option(20, "Differential-evolution rounds of the one-pixel "
                                            "attack (population 64).")
    local_search_rounds: int = option(20, "Rounds of the local-search attack (5 pixels each).")
    batch_size: int = option(128, "Attack batch: images per attack step (not a training "
                                  "batch).")
    output_dir: str = option("/tmp/keras_icnn_detect", "Where results.json and results.md go.")
    verbose: int = option(1, "Progress bars (1) or quiet (0).")

    def validate(self):
        """Raise a ValueError/FileNotFoundError naming the first bad field; returns self."""
        check_model_files(self.models, self.names)
        for attack in self.attacks:
            if attack not in WHITE_BOX:
                raise ValueError(f"`attacks` must be among {WHITE_BOX}. Received: {attack!r}")
        if not self.features:
            raise ValueError(f"`features` must name at least one of "
                             f"{adversarial.FEATURE_SITES}. Received: ()")
        for site in self.features:
            if site not in adversarial.FEATURE_SITES:
                raise ValueError(f"`features` must be among {adversarial.FEATURE_SITES}. "
                                 f"Received: {site!r}")
        for attack in self.black_box:
            if attack not in BLACK_BOX:
                raise ValueError(f"`black_box` must be among {BLACK_BOX}. Received: {attack!r}")
        try:
            sizes = [int(v) for v in self.train_per_class]
        except ValueError:
            raise ValueError("`train_per_class` must be integers. Received: "
                             f"{list(self.train_per_class)}") from None
        if not sizes or min(sizes) < 1:
            raise ValueError(f"`train_per_class` must be positive. Received: {sizes}")
        check_fields(self, positive=("test_per_class", "repeats", "pgd_iterations",
                                     "cw_iterations", "batch_size", "one_pixel_generations",
                                     "local_search_rounds"),
                     non_negative=("black_box_images",),
                     positive_numbers=("eps", "pgd_step", "cw_c"),
                     choices={"eval_split": SPLITS})
        self.validate_data()
        return self

    @property
    def sizes(self):
        return [int(v) for v in self.train_per_class]


def _split_arrays(config):
    source = open_data(config)
    images, labels = [], []
    for x, y in source.dataset(config.eval_split, 256, as_supervised=True):
        images.append(x.numpy())
        labels.append(y.numpy())
    return source, np.concatenate(images).astype(np.float32), np.concatenate(labels)


def _attack(name, model, images, labels, targets, config):
    if name == "fgsm":
        return adversarial.fgsm(model, images, labels, config.eps, targets=targets,
                                batch_size=config.batch_size)
    if name == "pgd":
        return adversarial.pgd(model, images, labels, config.eps, config.pgd_step,
                               config.pgd_iterations, targets=targets, seed=config.seed,
                               batch_size=config.batch_size)
    return adversarial.cw_l2(model, images, labels, targets=targets,
                             iterations=config.cw_iterations, c=config.cw_c,
                             batch_size=config.batch_size)


def _black_box(name, model, images, labels, config):
    if name == "one_pixel":
        return adversarial.one_pixel(model, images, labels, pixels=1, population=64,
                                     generations=config.one_pixel_generations, seed=config.seed)
    return adversarial.local_search(model, images, labels, rounds=config.local_search_rounds,
                                    seed=config.seed)


def run_detection(config):
    """Attack every model, train and test the detectors; write results.json and results.md.

    Returns:
        The results dict (also in ``<output_dir>/results.json``).
    """
    config.validate()
    prepare_output(config)
    t0 = time.time()
    names = list(config.names) or [os.path.splitext(os.path.basename(m))[0] for m in config.models]
    source, images, labels = _split_arrays(config)
    need = max(config.sizes) + config.test_per_class
    counts = np.bincount(labels, minlength=source.num_classes)
    if counts.min() < need:
        raise ValueError(f"the {config.eval_split} split has {counts.min()} images in its "
                         "smallest "
                         f"class; the protocol needs {need} per class (train_per_class + "
                         "test_per_class): lower them or raise --num_test")
    targets = (adversarial.random_targets(labels, source.num_classes, config.seed)
               if config.targeted else None)
    steps = len(names) * (len(config.attacks) + len(config.black_box))
    bar = keras.utils.Progbar(steps, unit_name="attack", verbose=config.verbose)
    results = {"models": {}, "settings": {k: v for k, v in dataclasses.asdict(config).items()
                                          if k not in ("models", "names")},
               "images": int(len(images)), "num_classes": int(source.num_classes)}
    done = 0
    for name, path in zip(names, config.models):
        model = load_model_file(path, "models")
        clean = {site: adversarial.conv_features(model, images, config.batch_size, where=site)
                 for site in config.features}
        predicted = adversarial.probabilities(model, images).argmax(-1)
        accuracy = float(np.mean(predicted == labels))
        # "detection" holds the first feature site's table (the one `make bench` reads);
        # "detection_by_features" every site's.
        row = {"accuracy": accuracy, "detection": {}, "attack_success": {}, "black_box": {},
               "detection_by_features": {site: {} for site in config.features},
               "feature_layers": {site: [layer.name for layer in
                                         adversarial.feature_layers(model, site)]
                                  for site in config.features}}
        for attack in config.attacks:
            adv = _attack(attack, model, images, labels, targets, config)
            row["attack_success"][attack] = adversarial.success_rate(model, images, adv, labels,
                                                                     targets)
            for site in config.features:
                feats = adversarial.conv_features(model, adv, config.batch_size, where=site)
                row["detection_by_features"][site][attack] = {
                    str(n): adversarial.detection_error(clean[site], feats, labels, n,
                                                        config.test_per_class, config.repeats,
                                                        config.seed)
                    for n in config.sizes}
            row["detection"][attack] = row["detection_by_features"][config.features[0]][attack]
            done += 1
            bar.update(done)
        correct = np.flatnonzero(predicted == labels)[:config.black_box_images]
        for attack in config.black_box:
            adv = _black_box(attack, model, images[correct], labels[correct], config)
            row["black_box"][attack] = adversarial.success_rate(
                model, images[correct], adv, labels[correct])
            done += 1
            bar.update(done)
        results["models"][name] = row
    results["seconds"] = round(time.time() - t0, 1)
    write_config(config, source, splits=())
    write_json(os.path.join(config.output_dir, "results.json"), results)
    table = markdown(results, config)
    with open(os.path.join(config.output_dir, "results.md"), "w") as f:
        f.write(table)
    return results, table


def markdown(results, config):
    """Table 3 (detection error, mean ± std over the repeats, per attack and training size)
    and Table 4 (black-box success rates), models as columns, as in the paper."""
    names = list(results["models"])
    models = results["models"]
    detection = [[site, attack.upper(), n] + [
        "{:.2f}% ± {:.2f}".format(100 * d["mean"], 100 * d["std"]) for d in (
            models[name]["detection_by_features"][site][attack][str(n)] for name in names)]
        for site in config.features for attack in config.attacks for n in config.sizes]
    lines = [f"Settings: {config.eval_split} split, {results['images']} images, "
             f"{'targeted (random other class)' if config.targeted else 'untargeted'}; "
             f"FGSM / PGD eps {config.eps} ([0, 1] scale), PGD step {config.pgd_step} x "
             f"{config.pgd_iterations}, CW-L2 {config.cw_iterations} steps c={config.cw_c}; "
             f"detector: random forest (100 trees), {config.test_per_class} test images per "
             f"class, {config.repeats} repeats; {results['seconds']} s.", "",
             "Detection error rate (lower is better; CSG Table 3):", "",
             tables.table(["features", "attack", "train / class"] + names, detection), "",
             "Attack success rate on the attacked images (for reference):", "",
             tables.table(["attack"] + names, [[attack.upper()] + [
                 f"{100 * models[n]['attack_success'][attack]:.1f}%" for n in names]
                 for attack in config.attacks])]
    if config.black_box:
        lines += ["", f"Black-box attack success rate (lower is better; CSG Table 4; "
                      f"{config.black_box_images} correctly classified images):", "",
                  tables.table(["attack"] + names, [[attack] + [
                      f"{100 * models[n]['black_box'][attack]:.1f}%" for n in names]
                      for attack in config.black_box])]
    lines += ["", tables.table(["model", "clean accuracy"],
                               [[n, f"{models[n]['accuracy']:.4f}"] for n in names])]
    return "\n".join(lines) + "\n"
