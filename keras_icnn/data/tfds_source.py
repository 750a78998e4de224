"""An image-classification TFDS dataset already prepared under a directory as a
:class:`~keras_icnn.data.source.Source` (never downloads; every file of the builder directory
must lie inside it).
"""
import os

import numpy as np
import tensorflow as tf

from keras_icnn.data import readers, splits as splits_lib
from keras_icnn.data.source import (
    DEFAULT_SHUFFLE_BUFFER, Source, require_dir, resize_uint8, split_sizes)


def _tfds_builder(data_dir, tfds_name):
    import tensorflow_datasets as tfds

    require_dir(data_dir, "a prepared TFDS data directory")
    if not tfds_name:
        raise ValueError("`tfds_name` is needed with dataset='tfds' (e.g. 'oxford_flowers102' "
                         "or 'name/config:1.0.0', prepared under data_dir). Received: ''")
    name = tfds_name.split(":")[0]
    folder = os.path.join(data_dir, *name.split("/"))
    candidates = []
    for path, _, files in os.walk(folder):
        if "dataset_info.json" in files:
            candidates.append(path)
    if ":" in tfds_name:
        version = tfds_name.split(":")[1]
        candidates = [c for c in candidates if os.path.basename(c) == version]
    if not candidates:
        raise FileNotFoundError(
            f"TFDS dataset {tfds_name!r} is not prepared under {data_dir} (no "
            f"{folder}/.../dataset_info.json). keras_icnn never downloads: prepare it with "
            f"`tfds build {name} --data_dir={data_dir}` on a machine with internet, then copy it.")
    chosen = sorted(candidates)[-1]
    # Every file the builder may read (its dataset_info.json, features, record shards) must
    # lie inside data_dir once links are resolved.
    readers.inside_dataset(data_dir, chosen, folder, entry=os.path.relpath(chosen, data_dir))
    for f in sorted(os.listdir(chosen)):
        readers.inside_dataset(data_dir, os.path.join(chosen, f), chosen, entry=f)
    return tfds.builder_from_directory(chosen)


def open_tfds(data_dir, tfds_name, image_size=64, num_train=None, num_val=0, num_test=None,
              seed=0, image_key="image", label_key="label"):
    """An image-classification TFDS dataset prepared under ``data_dir`` as a :class:`Source`."""
    notes = []
    import tensorflow_datasets as tfds

    builder = _tfds_builder(data_dir, tfds_name)
    features = builder.info.features
    for key in (image_key, label_key):
        if key not in features:
            raise ValueError(f"TFDS dataset {tfds_name!r} has no feature {key!r}; it has "
                             f"{sorted(features.keys())}")
    label_feature = features[label_key]
    if not hasattr(label_feature, "num_classes"):
        raise ValueError(f"TFDS feature {label_key!r} of {tfds_name!r} is not a ClassLabel")
    class_names = list(label_feature.names)
    available = list(builder.info.splits.keys())
    if "train" not in available:
        raise ValueError(f"TFDS dataset {tfds_name!r} has no 'train' split; it has {available}")
    decoders = {image_key: tfds.decode.SkipDecoding()}

    def raw(split):
        return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)

    def split_labels(split):
        ds = raw(split).map(lambda ex: ex[label_key]).batch(4096)
        return np.concatenate(list(ds.as_numpy_iterator()) or [np.zeros(0, np.int64)])

    train_labels = split_labels("train")
    test_split = "test" if "test" in available else ("validation" if "validation" in available
                                                      else None)
    tables = {}
    if test_split:
        test_labels = split_labels(test_split)
        keep = (splits_lib.stratified_take(test_labels, num_test, seed=[seed, 7]) if num_test
                else np.arange(len(test_labels)))
        tables["test"] = (test_split, test_labels, keep)
        carved = splits_lib.carve(train_labels,
                                  split_sizes(num_train, num_val, len(train_labels), notes),
                                  seed)
    else:
        n_test = num_test or int(round(0.2 * len(train_labels)))
        carved = splits_lib.carve(
            train_labels,
            [("test", n_test)] + split_sizes(num_train, num_val, len(train_labels) - n_test, notes),
            seed)
        tables["test"] = ("train", train_labels, carved["test"])
    tables["train"] = ("train", train_labels, carved["train"])
    tables["validation"] = ("train", train_labels, carved["validation"])
    size = int(image_size)

    class _TFDSSource(Source):
        def examples(self, split, shuffle=False, seed=0, num_parallel_calls=tf.data.AUTOTUNE,
                     shard=None):
            tfds_split, records = self._tfds[split]
            keep = self.table(split)["index"]
            member = np.zeros(records, bool)
            member[keep] = True
            member = tf.constant(member)
            ds = raw(tfds_split).enumerate().filter(lambda i, ex: tf.gather(member, i))
            ds = ds.map(lambda i, ex: (ex[image_key], ex[label_key]))
            if shard is not None:
                ds = ds.shard(*shard)
            if shuffle:
                # Encoded images: the buffer holds compressed bytes, not decoded pixels.
                ds = ds.shuffle(min(DEFAULT_SHUFFLE_BUFFER, max(len(keep), 1)), seed=seed,
                                reshuffle_each_iteration=True)

            def decode(data, label):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
                image.set_shape([None, None, 3])
                return {"image": resize_uint8(image, size), "label": tf.cast(label, tf.int64)}

            return ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=True)

    index = {k: {"label": v[1][v[2]], "index": np.asarray(v[2], np.int64)}
             for k, v in tables.items()}
    source = _TFDSSource("tfds", class_names, None, index, image_size=size,
                         description=f"{tfds_name} in {data_dir}", notes=notes, streamed=True)
    source._tfds = {k: (v[0], len(v[1])) for k, v in tables.items()}
    return source


