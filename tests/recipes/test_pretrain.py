"""The pretraining recipe (recipes/pretrain.py): its checks, and a run in process whose saved
conv base reproduces the trained classifier's features."""
import numpy as np
import pytest


def test_pretrain_config_checks():
    from keras_icnn.recipes.pretrain import PretrainConfig

    assert PretrainConfig().validate().num_classes == 30
    for bad, match in ((dict(categories="imagenet"), "categories"),
                       (dict(num_classes=31), r"<= 30 with categories='pretraining'"),
                       (dict(num_classes=13, categories="evaluation"), "<= 12"),
                       (dict(epochs=0), "epochs")):
        with pytest.raises(ValueError, match=match):
            PretrainConfig(**bad).validate()


def test_run_pretraining_writes_the_base_the_fine_tuning_reads(tmp_path):
    import keras

    from keras_icnn.models.backbones import conv_base, get_backbone
    from keras_icnn.recipes.pretrain import PretrainConfig, run_pretraining

    config = PretrainConfig(image_size=32, num_classes=4, num_train=32, num_val=8, num_test=16,
                            epochs=1, width=4, batch_size=16, jit_compile=False, verbose=0,
                            output_dir=str(tmp_path / "pre"))
    results = run_pretraining(config)
    classifier = keras.models.load_model(tmp_path / "pre" / "classifier.keras")
    source = config_source(config)
    test = source.materialize("test")
    accuracy = np.mean(classifier.predict(test["image"], verbose=0).argmax(-1) == test["label"])
    assert results["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert results["classes"][:2] == ["pretraining_01", "pretraining_02"]
    fine = get_backbone("vgg", (32, 32, 3), 2, weights=results["weights_file"], width=4)
    np.testing.assert_array_equal(conv_base(fine)(test["image"][:2]),
                                  conv_base(classifier)(test["image"][:2]))


def config_source(config):
    from keras_icnn.recipes.common import open_data

    return open_data(config, **config.synthetic_options())
