"""report.html (reporting/html.py) as a person sees it: rendered in headless Chromium."""
import shutil
import subprocess

import pytest
import tensorflow as tf


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_html_renders_in_chromium(evaluated, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed and could not be (.ci/run installs the Debian "
                    "package `chromium` where apt-get works): the HTML report is not rendered")
    _, out_dir, _ = evaluated
    page = out_dir / "report.html"
    assert page.stat().st_size < 15e6
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    proc = subprocess.run(common + [f"--screenshot={shot}", "--window-size=1280,2400",
                                    page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    # No console output at all: the page logs nothing itself, so any line is an error.
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    pixels = tf.io.decode_png(shot.read_bytes()).numpy()
    assert pixels.shape[:2] == (2400, 1280) and pixels.std() > 10  # not a blank page
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-ready="yes"' in dom  # the page's script ran to its end
    assert 'id="atlas-icnn"' in dom and 'id="atlas-csg"' in dom
    cards = 3 * 20 - (20 - 16) * 2  # csg/resnet: 16 filters
    assert dom.count('class="filter"') == cards
    # Each card shows its filter's gradient-ascent picture; each model its unique detectors.
    assert dom.count('class="ascent"') == cards and dom.count('class="dissection"') == 3
    assert dom.count("NetDissect: ") == cards
    # --trees: per model a decision-modes section; per class its largest modes with example
    # images; the explained predictions' parse paths.
    assert dom.count('class="trees"') == 3
    assert dom.count('class="tree"') == 3 * 3  # three classes per model
    assert dom.count('class="parse"') >= 3 and "mode " in dom
    assert "training image of mode" in dom
    # --graph: per model its layers drawn and a picture of each layer's nodes
    assert dom.count('class="graph"') == 3 and dom.count("<svg") >= 3
    assert dom.count('alt="nodes of ') == 3 * 3
