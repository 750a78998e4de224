"""The Source (data/source.py): bad image files are named."""
import os
import pytest

from keras_icnn.data import layouts, sources


def test_bad_image_files_are_named(tmp_path, synthetic):
    root = layouts.write_folder_layout({k: v[::7] for k, v in synthetic.items()},
                                       str(tmp_path / "bad"))
    victim = sorted(os.listdir(os.path.join(root, "class_0")))[0]
    path = os.path.join(root, "class_0", victim)
    data = open(path, "rb").read()
    with open(path, "wb") as f:  # truncated: the header is fine, the data is not
        f.write(data[:len(data) // 3])
    source = sources.open_source("folder", root, image_size=16)
    with pytest.raises(ValueError, match=f"{victim}: cannot be decoded as an image"):
        with source.naming_bad_files():
            list(source.dataset("train", 4).concatenate(source.dataset("test", 4)))
    with open(path, "wb") as f:
        f.write(b"not an image at all")
    with pytest.raises(ValueError, match=f"{victim}: not a JPEG, PNG"):
        sources.open_source("folder", root, image_size=16)
