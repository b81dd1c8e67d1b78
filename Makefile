# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, run SIN on the bundled sample image (overlay PNG in out/)
#   make test   - same set-up, then the test suite
#   make lint   - ruff (rules in pyproject.toml); .ci/run runs lint, then test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch/torchvision pinned to the releases available offline on these machines;
# pyproject keeps loose ranges (torch>=2.2) for everybody else.
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-all lint clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[test,tflite,dask]"
	# pysodmetrics pulls plain OpenCV, whose cv2 shadows opencv-contrib's cv2.ximgproc
	# (needed by the seeds/lsc providers): remove it and reinstall contrib last.
	$(BIN)/python -m pip uninstall -q -y opencv-python-headless opencv-python || true
	$(BIN)/python -m pip install -q --force-reinstall --no-deps opencv-contrib-python-headless
	$(BIN)/python -c "import cv2, torch; assert hasattr(cv2, 'ximgproc'); print('installed: torch', torch.__version__, 'opencv', cv2.__version__)"
	# optional extra `fastslic` (the fastslic provider): fast-slic 0.4 builds only without build
	# isolation, after cython and numpy; a failed build leaves the provider out, nothing else
	$(BIN)/python -m pip install -q cython numpy && \
	  $(BIN)/python -m pip install -q --no-build-isolation "fast-slic>=0.4" || \
	  echo "NOTE: fast-slic did not build; the optional 'fastslic' provider is unavailable (everything else works)"
	$(BIN)/python -c "import fast_slic; from fast_slic.avx2 import SlicAvx2; print('installed: fast-slic (AVX2)')" \
	  2>/dev/null || echo "NOTE: fast_slic.avx2 does not import; the 'fastslic' provider is unavailable"
	# optional extra `crf` (the +CRF row of Table 1): pydensecrf2 builds like fast-slic; without it
	# the row says "not available" and its tests are skipped
	$(BIN)/python -m pip install -q --no-build-isolation "pydensecrf2>=1.1" || \
	  echo "NOTE: pydensecrf2 did not build; the +CRF row of Table 1 is unavailable (everything else works)"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m sin demo --out out

test: install
	$(BIN)/python -m pytest -q -n 2 --durations=15

# slow tests too (long property runs, dataset-wide checks)
test-all: install
	$(BIN)/python -m pytest -q -n 2 -m "slow or not slow"

# ruff rules: [tool.ruff.lint] in pyproject.toml
lint: install
	$(BIN)/python -m pip install -q "ruff>=0.5"
	$(BIN)/ruff check sin downstream benchmarks tests

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
