"""The detection command's config (recipes/adversarial.py): every rule names its field."""
import pytest

from keras_icnn.recipes.adversarial import DetectConfig


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"")
    return str(path)


@pytest.mark.parametrize("bad, message", [
    (dict(attacks=("fgsm", "deepfool")), r"`attacks` must be among .* Received: 'deepfool'"),
    (dict(features=()), r"`features` must name at least one of"),
    (dict(features=("pixels",)), r"`features` must be among .* Received: 'pixels'"),
    (dict(black_box=("boundary",)), r"`black_box` must be among .* Received: 'boundary'"),
    (dict(train_per_class=("ten",)), r"`train_per_class` must be integers"),
    (dict(train_per_class=("0",)), r"`train_per_class` must be positive"),
    (dict(eps=0.0), r"`eps`"),
    (dict(eval_split="holdout"), r"`eval_split`"),
    (dict(names=("a", "b")), r"`names` must give one name per model \(1\)"),
])
def test_bad_settings_are_named(model_file, tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        DetectConfig(models=(model_file,), output_dir=str(tmp_path), **bad).validate()


def test_good_settings_and_sizes(model_file, tmp_path):
    config = DetectConfig(models=(model_file,), output_dir=str(tmp_path),
                          train_per_class=("500", "1000"), eval_split="train").validate()
    assert config.sizes == [500, 1000]
    with pytest.raises(FileNotFoundError, match="model file not found"):
        DetectConfig(models=(str(tmp_path / "none.keras"),), output_dir=str(tmp_path)).validate()
