"""A TensorFlow Datasets builder over the synthetic part generator.

Configs: ``multi_64``, ``multi_96`` (all six categories), ``tiny_64`` (a
few images for smoke tests) and
``single_<category>_64`` (one category vs. background, labels 1 / 0) for each
of the six default categories. Each has ``train``, ``validation`` and ``test``
splits. Building never touches the network: the examples come from
``synthetic_parts.make_examples`` and the builder downloads nothing (and
``tfds``' GCS look-ups are switched off while it builds).

Build, then load (with ``download=False`` nothing is fetched either)::

    python -m keras_icnn.data.tfds_builder --config=multi_64 --data_dir=/data/tfds

    import tensorflow_datasets as tfds
    import keras_icnn.data.tfds_builder  # registers "synthetic_parts"
    ds = tfds.load("synthetic_parts/multi_64", split="train", data_dir="/data/tfds",
                   download=False)
"""

import argparse
import sys

import numpy as np
import tensorflow_datasets as tfds

from keras_icnn.data import synthetic_parts

_DEFAULT_CATEGORIES = synthetic_parts.CATEGORY_NAMES[:6]


class SyntheticPartsConfig(tfds.core.BuilderConfig):
    """One variant of the dataset: image size, task, split sizes, seed, difficulty."""

    def __init__(self, *, image_size=64, num_classes=6, category=None, num_train=4800,
                 num_val=600, num_test=1200, seed=0, occlusion=None, difficulty="default",
                 **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)
        self.category = category
        self.split_sizes = {"train": int(num_train), "validation": int(num_val),
                            "test": int(num_test)}
        self.seed = int(seed)
        self.look = synthetic_parts.synthetic_config(difficulty)  # occlusion None: its own
        if occlusion is not None:
            self.look["occlusion"] = float(occlusion)


def _configs():
    configs = [
        SyntheticPartsConfig(name="multi_64", image_size=64,
                             description="Six creature categories, 64x64."),
        SyntheticPartsConfig(name="multi_96", image_size=96,
                             description="Six creature categories, 96x96."),
        SyntheticPartsConfig(name="hard10_64", image_size=64, num_classes=10, difficulty="hard",
                             description="Ten creature categories, CIFAR-like difficulty: "
                                         "sibling categories share parts, colour casts, two "
                                         "isolated parts of other categories per image; 64x64."),
        SyntheticPartsConfig(name="tiny_64", image_size=64, num_train=96, num_val=24,
                             num_test=48, description="A few images, for smoke tests."),
    ]
    for cat in _DEFAULT_CATEGORIES:
        configs.append(SyntheticPartsConfig(
            name=f"single_{cat}_64", image_size=64, category=cat, num_train=2400,
            num_val=300, num_test=600,
            description=f"'{cat}' creatures (label 1) vs. background and clutter (label 0), 64x64."))
    return configs


class SyntheticParts(tfds.core.GeneratorBasedBuilder):
    """Synthetic part-annotated creatures (keras_icnn)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _configs()

    def _info(self):
        c = self.builder_config
        size = c.image_size
        parts = len(synthetic_parts.PART_NAMES)
        names = (["background", c.category] if c.category
                 else list(synthetic_parts.CATEGORY_NAMES[:c.num_classes]))
        zlib = tfds.features.Encoding.ZLIB
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "label": tfds.features.ClassLabel(names=names),
                "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                "part_masks": tfds.features.Tensor(shape=(size, size, parts), dtype=np.bool_,
                                                   encoding=zlib),
                "landmarks": tfds.features.Tensor(shape=(parts, 2), dtype=np.float32),
                "object_mask": tfds.features.Tensor(shape=(size, size), dtype=np.bool_,
                                                    encoding=zlib),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded
        return {split: self._generate_examples(split, n)
                for split, n in self.builder_config.split_sizes.items()}

    def _generate_examples(self, split, n):
        c = self.builder_config
        chunk = 512
        for start in range(0, n, chunk):
            count = min(chunk, n - start)
            common = dict(image_size=c.image_size, num_classes=c.num_classes, seed=c.seed,
                          split=split, start=start, **c.look)
            if c.category:
                ex = synthetic_parts.make_single_category_examples(c.category, count, **common)
            else:
                ex = synthetic_parts.make_examples(count, **common)
            for j in range(count):
                yield start + j, {k: ex[k][j] for k in ex}


def build(config_name, data_dir):
    """Build ``synthetic_parts/<config_name>`` into ``data_dir`` offline; return the builder."""
    names = [cfg.name for cfg in SyntheticParts.BUILDER_CONFIGS]
    if config_name not in names:
        raise ValueError(f"Unknown config {config_name!r}; expected one of {names}")
    builder = tfds.builder(f"synthetic_parts/{config_name}", data_dir=data_dir)
    tfds.core.utils.gcs_utils._is_gcs_disabled = True  # never look up prepared data online
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder


def main(argv=None):
    names = [cfg.name for cfg in SyntheticParts.BUILDER_CONFIGS]
    parser = argparse.ArgumentParser(
        prog="python -m keras_icnn.data.tfds_builder",
        description="Build the synthetic_parts TFDS dataset offline into --data_dir.")
    parser.add_argument("--config", default="multi_64", choices=names)
    parser.add_argument("--data_dir", required=True, help="TFDS data directory to write")
    args = parser.parse_args(argv)
    builder = build(args.config, args.data_dir)
    print(f"built {builder.info.full_name} in {builder.data_dir}")
    for split, info in builder.info.splits.items():
        print(f"  {split}: {info.num_examples} examples")


if __name__ == "__main__":
    sys.exit(main())
