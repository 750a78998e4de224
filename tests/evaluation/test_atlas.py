"""The filter atlas (evaluation/atlas.py): each filter's top-activating images, in the report."""
import json

import numpy as np
import pytest

from keras_icnn import report


def test_atlas_shows_each_filters_top_activating_images(evaluated):
    from keras_icnn import metrics

    _, out_dir, models = evaluated
    rep = json.loads((out_dir / "report.json").read_text())
    config = report.EvalConfig(num_examples=36, image_size=32, num_classes=3)
    source = report.load_source(config)
    batches = list(source.dataset("test", 64, as_supervised=False))
    images = np.concatenate([b["image"].numpy() for b in batches])
    labels = np.concatenate([b["label"].numpy() for b in batches])
    part_masks = np.concatenate([b["part_masks"].numpy() for b in batches])
    concepts, names = metrics.category_part_concepts(part_masks, labels, 3,
                                                     class_names=source.class_names,
                                                     part_names=source.part_names)
    for section in rep["atlas"]:
        model = models[section["name"]]
        r = metrics.collect_responses(model, section["layer"], {"image": images}, verbose=0)
        assert len(section["filters"]) == min(20, section["num_filters"])
        # Network Dissection (dataset-wide IoU, (category, part) concepts) = in memory.
        dis = metrics.dissection(r["maps"], concepts)
        row = rep["models"][section["name"]]
        assert row["unique_detectors"] == dis["unique_detectors"]
        assert row["mean_best_iou"] == pytest.approx(dis["mean_best_iou"], rel=1e-6)
        assert section["dissection"]["unique_detectors"] == dis["unique_detectors"]
        for card in section["filters"]:
            want = np.argsort(-r["scores"][:, card["index"]], kind="stable")[:5]
            assert card["top_images"] == want.tolist()
            f = card["index"]
            assert card["concept"] == names[dis["best_concept"][f]]
            assert card["concept_iou"] == pytest.approx(dis["best_iou"][f], rel=1e-6, abs=1e-9)
        if section["name"] == "icnn":  # the most interpretable filters first
            values = [c["interpretability"] for c in section["filters"]]
            assert values == sorted(values, reverse=True) and section["has_parts"]
    csg = next(s for s in rep["atlas"] if s["name"] == "csg")
    gate = np.asarray(models["csg"].gate_layer.gate)
    for card in csg["filters"]:
        assert card["relevance"] == pytest.approx(float(gate[:, card["index"]].max()), rel=1e-6)
