"""The synthetic data's preview picture (data/synthetic_preview.py)."""
from keras_icnn.data import synthetic_preview


def test_preview_writes_png_into_a_new_directory_without_choosing_a_backend(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    out = tmp_path / "not" / "yet" / "preview.png"  # `make preview` on a fresh clone
    synthetic_preview.main(["--preview", str(out), "--n", "4"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend
