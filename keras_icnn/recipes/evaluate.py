"""``keras-icnn-evaluate``: evaluate saved models with every applicable metric; write
report.json, report.md, report.html and pictures.

``keras_icnn.cli.evaluate`` parses flags into :class:`EvalConfig` and calls
:func:`evaluate_models`; each model's work is :func:`keras_icnn.evaluation.evaluate.evaluate_model`.
"""

import dataclasses
import os
import time

from keras_icnn.evaluation.evaluate import evaluate_model
from keras_icnn.reporting import tables
from keras_icnn.config.choices import EVAL_SPLITS as SPLITS
from keras_icnn.data.synthetic_parts import TASKS
from keras_icnn.config.flags import option
from keras_icnn.config.options import DataOptions
from keras_icnn.recipes.common import check_model_files, load_model_file, open_data, prepare_output
from keras_icnn.reporting.outputs import write_config, write_json
from keras_icnn.validation import check_fields

COLUMNS = (
    ("accuracy", "accuracy", "higher"),
    ("location_instability", "location instability", "lower"),
    ("part_consistency", "part consistency", "higher"),
    ("part_stability", "part stability", "higher"),
    ("part_interpretability", "part interpretability", "higher"),
    ("mis", "MIS", "higher"),
    ("activmap_avg_iou", "ActivMap Avg-IoU", "higher"),
    ("activmap_ap20", "ActivMap AP20", "higher"),
    ("activmap_ap30", "ActivMap AP30", "higher"),
    ("gradmap_avg_iou", "GradMap Avg-IoU", "higher"),
    ("cam_avg_iou", "CAM Avg-IoU", "higher"),
    ("redundancy_r0.1", "r_0.1", "lower"),
    ("c_ic", "C_IC", "lower"),
    ("unique_detectors", "unique detectors (NetDissect)", "higher"),
    ("mean_best_iou", "mean best IoU (NetDissect)", "higher"),
)


@dataclasses.dataclass
class EvalConfig(DataOptions):
    """Settings of ``trainers/evaluate.py`` (the data options are the trainers', so the same
    flags give the same splits)."""

    models: tuple = option((), "Comma-separated .keras files to evaluate.")
    names: tuple = option((), "Names of the models in the report (default: file names).")
    eval_split: str = option("test", "Split to evaluate: train, validation or test.", SPLITS,
                             aliases=("split",))
    task: str = option("multi", "Synthetic task the models were trained on.", TASKS)
    category: str = option("bird", "Positive category of --task=single.")
    num_examples: int = option(1200, "Images to evaluate, taken evenly across classes (0: the "
                                     "whole split of a real dataset).")
    layer: str = option("", "Layer to evaluate (default: the top conv layer).")
    top_k: int = option(100, "Images per filter and landmark in location instability.")
    gradmap_examples: int = option(48, "Images for GradMap localization (0 skips it).")
    batch_size: int = option(64, "Inference batch: images per evaluation step (not a "
                                 "training batch).")
    atlas_filters: int = option(64, "Filters per model in report.html's filter atlas (the most "
                                    "interpretable first).")
    atlas_images: int = option(8, "Top-activating test images shown per atlas filter.")
    ascent_steps: int = option(32, "Gradient-ascent steps of each atlas filter's picture "
                                    "(what excites it most; 0: no pictures).")
    explained_predictions: int = option(3, "Test predictions explained filter by filter in "
                                           "report.html.")
    trees: bool = option(False, "Fit a decision tree per class (SPEC §9) and show its top "
                                "decision modes and each explained prediction's parse path in "
                                "report.html (reads the train split once more).")
    tree_images: int = option(100, "Training images per class each --trees tree is fitted on.")
    graph: bool = option(False, "Fit an explanatory graph (SPEC §10: each filter of three conv "
                                "layers split into part patterns linked across layers) and "
                                "draw its layers and each node's top-activating patches in "
                                "report.html (reads the train split once more).")
    graph_images: int = option(100, "Training images per class the --graph graph is fitted "
                                     "on.")
    output_dir: str = option("/tmp/keras_icnn_eval", "Where the report goes.")
    verbose: int = option(1, "Progress bars (1) or quiet (0).")

    def validate(self):
        """Raise a ValueError/TypeError/FileNotFoundError naming the first bad field."""
        check_model_files(self.models, self.names)
        check_fields(self, positive=("top_k", "batch_size", "atlas_images", "tree_images",
                                     "graph_images"),
                     non_negative=("num_examples", "gradmap_examples", "atlas_filters",
                                   "explained_predictions", "ascent_steps"),
                     choices={"task": TASKS,
                              "eval_split": SPLITS})
        self.validate_data()
        if self.dataset == "synthetic" and self.num_examples < 1:
            raise ValueError("`num_examples` must be >= 1 with synthetic data. "
                             f"Received: num_examples={self.num_examples}")
        if self.eval_split == "validation" and self.dataset != "synthetic" and self.num_val < 1:
            raise ValueError("`num_val` must be >= 1 to evaluate the validation split")
        return self


def load_source(config):
    """The evaluation data: a :class:`~keras_icnn.data.sources.Source` whose ``config.eval_split``
    holds ``num_examples`` images (evenly across classes), and its class names."""
    if config.dataset == "synthetic":
        sizes = {split: 1 for split in ("train", "validation", "test")}
        sizes[config.eval_split] = config.num_examples
        return open_data(config, sizes, task=config.task, category=config.category)
    source = open_data(config)
    if config.num_examples:
        source.limit(config.eval_split, config.num_examples, config.seed)
    return source


def markdown_table(rows):
    """Rows = models, columns = metrics (the papers' table shape)."""
    return tables.metrics_table(rows, COLUMNS)


def load_tree_source(config, source):
    """The training images ``--trees`` and ``--graph`` fit on: the data's train split
    (synthetic data: made at the larger of ``tree_images`` and ``graph_images`` per class, as
    the trainers' seed makes it)."""
    if config.dataset != "synthetic":
        return source
    per_class = max(config.tree_images if config.trees else 0,
                    config.graph_images if config.graph else 0)
    sizes = {"train": per_class * source.num_classes, "validation": 1, "test": 1}
    return open_data(config, sizes, task=config.task, category=config.category)


def check_model_matches(model, path, config, source):
    """A ValueError naming the flag when the saved model does not take the data's images
    (``--image_size``) or predict its classes (``--num_classes`` / the dataset's classes)."""
    want = tuple(model.inputs[0].shape[1:3])
    if None not in want and want != (config.image_size, config.image_size):
        raise ValueError(f"`image_size` does not match the model {path}: it takes "
                         f"{want[0]}x{want[1]} images. Received: --image_size="
                         f"{config.image_size}")
    classes = int(model.outputs[0].shape[-1])
    if classes != source.num_classes and not (classes == 2 and config.task == "single"):
        flag = "--num_classes" if config.dataset == "synthetic" else "--dataset/--data_dir"
        raise ValueError(f"the model {path} predicts {classes} classes but the data has "
                         f"{source.num_classes} (set by {flag}). Received: "
                         f"--num_classes={config.num_classes}, --dataset={config.dataset}")


def evaluate_models(config):
    """Evaluate every model of the config; write config.json, report.json, report.md,
    report.html (with the filter atlas) and pictures."""
    config.validate()
    names = list(config.names) or [os.path.splitext(os.path.basename(m))[0] for m in config.models]
    prepare_output(config)
    t0 = time.time()
    source = load_source(config)
    write_config(config, source, splits=())
    tree_source = load_tree_source(config, source) if config.trees or config.graph else None
    from keras_icnn.reporting import figures as viz

    pictures_dir = os.path.join(config.output_dir, "pictures") if viz.available() else None
    if pictures_dir is None:
        print("pictures not drawn: matplotlib is not installed (pip install 'keras_icnn[viz]'); "
              "the numbers are all in report.json / report.md")
    rows, sections = {}, []
    for name, path in zip(names, config.models):
        if config.verbose:
            print(f"evaluating {name} ({path})")
        model = load_model_file(path, "models")
        check_model_matches(model, path, config, source)
        with source.naming_bad_files(config.eval_split):
            rows[name], atlas = evaluate_model(model, source, config, name, pictures_dir,
                                               tree_source)
        sections.append(atlas)
    from keras_icnn.reporting import html as report_html

    title = (f"keras_icnn evaluation ({config.dataset}, {config.eval_split} split, "
             f"{source.size(config.eval_split)} images)")
    notes = [] if source.has_parts else [
        f"{config.dataset} has no part annotations: part metrics are not applicable (n/a)."]
    html_path = report_html.write(os.path.join(config.output_dir, "report.html"), title, rows,
                                  COLUMNS, sections, notes)
    report = {"config": dataclasses.asdict(config), "models": rows,
              "atlas": report_html.summary_json(sections), "html": html_path,
              "seconds": round(time.time() - t0, 1)}
    write_json(os.path.join(config.output_dir, "report.json"), report)
    table = markdown_table(rows)
    with open(os.path.join(config.output_dir, "report.md"), "w") as f:
        f.write(f"# keras_icnn evaluation ({config.dataset}, {config.eval_split} split, "
                f"{source.size(config.eval_split)} images)\n\n{table}\n\n")
        if not source.has_parts:
            f.write(f"{config.dataset} has no part annotations: part metrics (location "
                    "instability, part interpretability) are not applicable (n/a).\n\n")
        for name, r in rows.items():
            f.write(f"## {name} (layer `{r['layer']}`, {r['filters']} filters)\n\n")
            for kind, png in r["pictures"].items():
                f.write(f"![{kind}](pictures/{os.path.basename(png)})\n")
            f.write("\n")
    return report, table
