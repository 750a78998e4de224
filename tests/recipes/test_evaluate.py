"""``keras-icnn-evaluate`` reads the evaluation split exactly twice per model (issue 45): the
stream's two passes; the atlas's top images and the explained predictions are kept on the way,
never read a third time. Counted on the golden models, with and without part masks."""
import os

import pytest

from keras_icnn.data import source as source_module
from keras_icnn.recipes.evaluate import EvalConfig, evaluate_models

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden")


def _count_reads(monkeypatch):
    reads = []
    original = source_module.Source.dataset

    def counting(self, split, *args, **kwargs):
        reads.append(split)
        return original(self, split, *args, **kwargs)

    monkeypatch.setattr(source_module.Source, "dataset", counting)
    return reads


@pytest.mark.parametrize("masks", [True, False], ids=["parts", "no-masks"])
def test_evaluate_reads_the_split_exactly_twice_per_model(monkeypatch, tmp_path, masks):
    if not masks:  # a dataset without part or object masks: the atlas still needs pass 2
        from keras_icnn.data.source import Source

        strip = Source.dataset

        def no_masks(self, split, *args, **kwargs):
            ds = strip(self, split, *args, **kwargs)
            if kwargs.get("as_supervised", True) is False:
                ds = ds.map(lambda b: {k: v for k, v in b.items()
                                       if k not in ("part_masks", "object_mask", "landmarks")})
            return ds

        monkeypatch.setattr(Source, "dataset", no_masks)
    reads = _count_reads(monkeypatch)
    models = tuple(os.path.join(GOLDEN, f"{n}.keras") for n in ("ordinary", "interpretable"))
    evaluate_models(EvalConfig(models=models, output_dir=str(tmp_path), image_size=32,
                               num_classes=3, num_examples=12, gradmap_examples=2,
                               atlas_filters=3, atlas_images=2, ascent_steps=0,
                               explained_predictions=2, verbose=0))
    assert reads == ["test"] * 4, reads  # two models, two reads each
    assert os.path.exists(tmp_path / "report.html")
