PYTHON ?= python
PIP ?= $(PYTHON) -m pip
DEMO_DIR ?= /tmp/keras_icnn_demo

.PHONY: install install-demo test demo bench bench-quick bench-layers bench-data preview docs-tables

# Installs the package (editable, from this checkout) and its extras only when
# something is missing, keras_icnn resolves to another checkout or its metadata (which the
# console scripts need) is gone.
install:
	@(cd / && $(PYTHON) -c "import sys, importlib.metadata as m, keras_icnn, keras_icnn_cli, tensorboard, tensorflow, keras, tensorflow_datasets, sklearn, scipy, pytest, matplotlib, tensorflow_serving; m.version('keras_icnn'); sys.exit(not keras_icnn.__file__.startswith('$(CURDIR)/'))") 2>/dev/null \
		|| $(PIP) install -q -e ".[test,viz]"

# What the demo and preview need (the package and matplotlib), not pytest or serving.
install-demo:
	@(cd / && $(PYTHON) -c "import sys, importlib.metadata as m, keras_icnn, keras_icnn_cli, tensorflow, keras, tensorflow_datasets, sklearn, scipy, matplotlib; m.version('keras_icnn'); sys.exit(not keras_icnn.__file__.startswith('$(CURDIR)/'))") 2>/dev/null \
		|| $(PIP) install -q -e ".[viz]"

# pytest exits 5 when it collects no test; that is a failure here too.
test: install
	$(PYTHON) -m pytest -q --durations=15 tests

# Trains an ordinary and an interpretable CNN, then evaluates both; ends with the path of
# report.html (metrics table + filter atlas).
demo: install-demo
	$(PYTHON) trainers/train_icnn.py --output_dir=$(DEMO_DIR) --epochs=8 --verbose=1
	$(PYTHON) trainers/evaluate.py --models=$(DEMO_DIR)/ordinary.keras,$(DEMO_DIR)/interpretable.keras \
		--output_dir=$(DEMO_DIR)/eval --verbose=1

bench: install
	$(PYTHON) benchmarks/bench_interpretability.py --seeds=0,1,2

bench-quick: install
	$(PYTHON) benchmarks/bench_interpretability.py --quick

bench-layers: install
	$(PYTHON) benchmarks/bench_layers.py --quick

bench-data: install
	$(PYTHON) benchmarks/bench_data.py

preview: install-demo
	mkdir -p $(DEMO_DIR)
	$(PYTHON) -c "import keras_icnn_cli; keras_icnn_cli.preview()" --preview $(DEMO_DIR)/preview.png

# The docs' generated tables (between <!-- table: ... --> markers) from benchmarks/results/.
docs-tables:
	$(PYTHON) benchmarks/docs_tables.py
