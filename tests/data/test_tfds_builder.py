"""The synthetic TFDS builder (data/tfds_builder.py), built and loaded offline."""
import socket

from keras_icnn.data import synthetic_parts


def test_tfds_build_and_load_offline(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    import tensorflow_datasets as tfds

    from keras_icnn.data import tfds_builder

    builder = tfds_builder.build("tiny_64", str(tmp_path))
    assert builder.info.splits["train"].num_examples == 96
    ds = tfds.load("synthetic_parts/tiny_64", split="test", data_dir=str(tmp_path), download=False)
    got = sorted((ex["label"].numpy(), ex["image"].numpy().tobytes(),
                  ex["part_masks"].numpy().tobytes()) for ex in ds)
    ref = synthetic_parts.make_examples(48, split="test")
    want = sorted((ref["label"][i], ref["image"][i].tobytes(), ref["part_masks"][i].tobytes())
                  for i in range(48))
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1:] for g in got] == [w[1:] for w in want]
