"""Flags generated from the config dataclasses (issue 32, 45): one meaning per flag name, the
old names as deprecated aliases, the export command's flags from ExportConfig."""
import pytest
from absl import app, flags

from keras_icnn.recipes import CSGConfig, ICNNConfig, config_from_flags, define_flags
from keras_icnn.recipes.evaluate import EvalConfig


def _parse(config_cls, argv):
    fv = flags.FlagValues()
    define_flags(config_cls, fv, module_name="prog")
    fv(["prog"] + argv)
    return config_from_flags(config_cls, fv)


def test_old_flag_names_still_work_with_a_notice(capsys, tmp_path):
    config = _parse(CSGConfig, ["--lr=0.5", "--lr_schedule=cosine", "--gate_lr=0.2"])
    assert (config.learning_rate, config.learning_rate_schedule, config.gate_learning_rate) \
        == (0.5, "cosine", 0.2)
    err = capsys.readouterr().err.splitlines()
    assert "keras_icnn: --lr is deprecated; use --learning_rate." in err
    assert sum("is deprecated" in line for line in err) == 3
    # A repeated enum flag: train_icnn.py's old --models.
    assert _parse(ICNNConfig, ["--models=interpretable"]).train == ("interpretable",)
    assert _parse(ICNNConfig, []).train == ("ordinary", "interpretable")
    (tmp_path / "m.keras").write_bytes(b"")
    assert _parse(EvalConfig, [f"--models={tmp_path / 'm.keras'}",
                               "--split=validation"]).eval_split == "validation"
    # A preset (--recipe=paper) treats a value given by its old name as given.
    assert _parse(CSGConfig, ["--recipe=paper", "--lr=0.5"]).learning_rate == 0.5
    assert _parse(CSGConfig, ["--recipe=paper"]).learning_rate == 0.1 * 64 / 256
    capsys.readouterr()
    assert _parse(CSGConfig, []).learning_rate == 1e-3 and capsys.readouterr().err == ""


def test_old_and_new_name_together_is_a_usage_error():
    with pytest.raises(app.UsageError, match="give only --learning_rate"):
        _parse(CSGConfig, ["--lr=0.5", "--learning_rate=0.1"])


def test_exporter_warmup_alias(capsys):
    from keras_icnn.cli import export
    from keras_icnn.config.flags import resolve_aliases

    fv = flags.FlagValues()
    export.define_flags("prog", fv)
    fv(["prog", "--model=m.keras", "--nowarmup"])
    resolve_aliases(fv)
    assert fv.serving_warmup is False
    assert "--warmup is deprecated; use --serving_warmup" in capsys.readouterr().err


def test_export_flags_come_from_export_config_and_layer_has_one_meaning():
    """Issue 45: the exporter's flags are generated from ExportConfig; with --explainer, the
    performer layer it reads is --explainer_layer (--layer still works there, as its
    deprecated name, never both)."""
    import dataclasses

    from absl import app, flags

    from keras_icnn.cli import export
    from keras_icnn.config.flags import config_from_flags
    from keras_icnn.export import ExportConfig

    fv = flags.FlagValues()
    export.define_flags("prog", fv)
    assert {f.name for f in dataclasses.fields(ExportConfig)} <= set(fv)
    fv(["prog", "--model=m.keras", "--explainer=e.keras", "--explainer_layer=block3_pool"])
    config = config_from_flags(ExportConfig, fv)
    assert (config.explainer_layer, config.layer, config.serving_warmup) == ("block3_pool", "",
                                                                             None)
    assert ExportConfig(model="m", explainer="e", layer="block3_pool").validate()  # old name
    for bad, message in (
            (dict(explainer="e"), "--explainer needs --explainer_layer"),
            (dict(explainer="e", layer="a", explainer_layer="b"), "give only --explainer_layer"),
            (dict(explainer_layer="b"), "applies with --explainer only")):
        with pytest.raises(ValueError, match=message):
            ExportConfig(model="m", **bad).validate()
    fv2 = flags.FlagValues()
    export.define_flags("prog", fv2)
    fv2(["prog", "--model=m.keras", "--version=-1"])
    with pytest.raises(app.UsageError, match="version"):
        config_from_flags(ExportConfig, fv2)
