"""Pascal-Part (data/pascal_part.py and its reader): objects, parts, errors, containment, splits."""
import os
import shutil
import numpy as np
import pytest
from scipy import io as sio

from keras_icnn.data import readers, sources
from tests.data.conftest import write_jpeg


def _struct_array(records, fields):
    arr = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, rec in enumerate(records):
        for f in fields:
            arr[0, i][f] = rec[f]
    return arr


@pytest.fixture
def pascal_root(tmp_path):
    root = tmp_path / "pascal"
    h, w = 60, 80
    img = np.zeros((h, w, 3), np.uint8)
    img[10:50, 20:60] = 200
    write_jpeg(str(root / "JPEGImages" / "2008_000001.jpg"), img)

    def mask(y0, y1, x0, x1):
        m = np.zeros((h, w), np.uint8)
        m[y0:y1, x0:x1] = 1
        return m

    bird_parts = _struct_array([
        {"part_name": "head", "mask": mask(10, 20, 20, 30)},
        {"part_name": "beak", "mask": mask(10, 20, 30, 34)},
        {"part_name": "torso", "mask": mask(20, 40, 20, 60)},
        {"part_name": "lleg", "mask": mask(40, 50, 30, 34)},
        {"part_name": "rfoot", "mask": mask(40, 50, 40, 44)},
    ], ("part_name", "mask"))
    person_parts = _struct_array([{"part_name": "hair", "mask": mask(0, 5, 0, 5)}],
                                 ("part_name", "mask"))
    objects = _struct_array([
        {"class": "bird", "class_ind": 3, "mask": mask(10, 50, 20, 60), "parts": bird_parts},
        {"class": "person", "class_ind": 15, "mask": mask(0, 10, 0, 10), "parts": person_parts},
    ], ("class", "class_ind", "mask", "parts"))
    os.makedirs(root / "Annotations_Part")
    sio.savemat(str(root / "Annotations_Part" / "2008_000001.mat"),
                {"anno": {"imname": "2008_000001", "objects": objects}})
    return str(root)


def test_pascal_part_reader(pascal_root):
    ex = readers.read_pascal_part(pascal_root, categories=("bird", "cat"), image_size=40)
    assert ex["image"].shape == (1, 40, 40, 3)
    assert list(ex["part_names"]) == ["head", "torso", "legs", "frontal_legs", "back_legs", "tail"]
    np.testing.assert_array_equal(ex["label"], [0])
    pm = ex["part_masks"][0]
    # Crop = the object box (x 20..60, y 10..50) at scale 1: head+beak merged = x 0..14, y 0..10.
    expected_head = np.zeros((40, 40), bool)
    expected_head[0:10, 0:14] = True
    np.testing.assert_array_equal(pm[..., 0], expected_head)
    expected_legs = np.zeros((40, 40), bool)
    expected_legs[30:40, 10:14] = True
    expected_legs[30:40, 20:24] = True
    np.testing.assert_array_equal(pm[..., 2], expected_legs)
    assert not pm[..., 3:].any()
    assert ex["object_mask"][0].all()
    lm = ex["landmarks"][0]
    for g in range(3):
        x, y = lm[g]
        assert pm[int(y), int(x), g]
    assert np.all(np.isnan(lm[3:]))


def test_pascal_part_errors(pascal_root, tmp_path):
    with pytest.raises(ValueError, match="Unknown Pascal-Part categories"):
        readers.read_pascal_part(pascal_root, categories=("unicorn",))
    with pytest.raises(FileNotFoundError, match="Annotations_Part"):
        os.makedirs(tmp_path / "empty")
        readers.read_pascal_part(str(tmp_path / "empty"))
    bad = os.path.join(pascal_root, "Annotations_Part", "2008_000002.mat")
    sio.savemat(bad, {"something": np.zeros(3)})
    with pytest.raises(ValueError, match="not a Pascal-Part annotation"):
        readers.read_pascal_part(pascal_root, image_ids=["2008_000002"])


def test_pascal_part_files_linked_out_of_the_root_are_refused(pascal_root, tmp_path):
    from keras_icnn.data import sources

    for sub, name in (("JPEGImages", "2008_000001.jpg"), ("Annotations_Part", "2008_000001.mat")):
        path = os.path.join(pascal_root, sub, name)
        moved = tmp_path / name
        shutil.move(path, moved)
        os.symlink(moved, path)
        pattern = f"{sub}: '{name}' resolves to .*outside the dataset directory"
        with pytest.raises(ValueError, match=pattern):
            readers.read_pascal_part(pascal_root, categories=("bird",))
        with pytest.raises(ValueError, match=pattern):
            sources.open_source("pascal_part", pascal_root, image_size=16)
        os.remove(path)
        shutil.move(moved, path)


def test_pascal_part_source_splits_images_by_id_stratified_and_streams(pascal_root):
    from keras_icnn.data import sources

    ann = os.path.join(pascal_root, "Annotations_Part")
    anno = sio.loadmat(os.path.join(ann, "2008_000001.mat"))["anno"]
    img = os.path.join(pascal_root, "JPEGImages", "2008_000001.jpg")
    data = open(img, "rb").read()
    for k in range(2, 21):  # 20 images: ids 1-10 birds, 11-20 cats, in id order
        image_id = f"2008_{k:06d}"
        with open(os.path.join(pascal_root, "JPEGImages", f"{image_id}.jpg"), "wb") as f:
            f.write(data)
        copy = anno.copy()
        if k > 10:
            objects = copy["objects"][0, 0].copy()
            objects["class"][0, 0] = np.array(["cat"])
            copy = {"imname": image_id, "objects": objects}
            sio.savemat(os.path.join(ann, f"{image_id}.mat"), {"anno": copy})
        else:
            sio.savemat(os.path.join(ann, f"{image_id}.mat"), {"anno": anno[0, 0]})
    source = sources.open_source("pascal_part", pascal_root, image_size=40, num_val=2, seed=1)
    assert source.class_names == list(readers.PASCAL_ANIMALS) and source.num_classes == 6
    sizes = {s: source.size(s) for s in ("train", "validation", "test")}
    assert sizes == {"train": 13, "validation": 2, "test": 5}
    for split in sizes:  # both categories in every split, within one image of their share
        counts = np.bincount(source.labels(split), minlength=6)[[0, 1]]
        assert np.all(counts >= 1) and abs(counts[0] - counts[1]) <= 1, (split, counts)
    streamed = source.materialize("test")
    first = os.path.basename(source._tables["test"]["path"][0])[:-4]
    in_memory = readers.read_pascal_part(pascal_root, image_ids=[first], image_size=40)
    for key in ("image", "part_masks", "object_mask"):
        np.testing.assert_array_equal(streamed[key][0], in_memory[key][0])
    np.testing.assert_allclose(streamed["landmarks"][0], in_memory["landmarks"][0])
