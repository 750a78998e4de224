"""The one JSON writer (reporting/outputs.py): numpy values at any depth, and config.json's
effective settings."""
import dataclasses
import json

import numpy as np

from keras_icnn.reporting import outputs


def test_jsonable_turns_numpy_into_python_at_any_depth(tmp_path):
    value = {1: [np.float32(0.5), (np.int64(3), np.bool_(True))], "a": {"m": np.eye(2)},
             "s": "text", "n": None}
    want = {"1": [0.5, [3, True]], "a": {"m": [[1.0, 0.0], [0.0, 1.0]]}, "s": "text", "n": None}
    assert outputs.jsonable(value) == want
    path = outputs.write_json(str(tmp_path / "deep" / "r.json"), value)
    with open(path) as f:
        assert json.load(f) == want


@dataclasses.dataclass
class _Config:
    output_dir: str
    num_classes: int = 6
    num_train: int = 100
    num_val: int = 0
    num_test: int = 50
    eval_split: str = "test"


class _Source:
    num_classes = 4
    sizes = {"train": 80, "validation": 0, "test": 40}

    def size(self, split):
        return self.sizes[split]


def test_config_json_holds_what_the_data_gave_the_run(tmp_path):
    config = _Config(str(tmp_path))
    with open(outputs.write_config(config, _Source())) as f:
        got = json.load(f)
    assert got["num_classes"] == 4 and got["num_train"] == 80 and got["num_test"] == 40
    assert got["from_data"]["flags_given"] == {"num_classes": 6, "num_train": 100,
                                               "num_test": 50}
    assert got["eval_images"] == 40
    assert outputs.run_settings(config) == dataclasses.asdict(config)
