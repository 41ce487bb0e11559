# make course      create .venv and open the course in JupyterLab
# make test        create .venv (if needed) and run every test, notebooks included
# make notebooks   re-execute every notebook in place, in order, storing the outputs
# make lint        ruff (package, tests, notebooks) and the notebook hygiene check
# make html        the chapters with their stored outputs as static pages, build/html/index.html, readable offline
#                  (nbconvert's lab template, as JupyterLab's own export; MathJax and the player's icons copied beside)
# make browser     only the browser tests: each chapter opened in JupyterLab and each page of the HTML build, in
#                  headless Chromium (Debian: apt-get install chromium); make test runs them too
# make pretrained  retrain ddpm_utils/checkpoints/digits.pt, digits_cond.pt (class-conditional), digits_hybrid_eps.pt
#                  (learned variances) and digits_hybrid.pt (learned variances, a mean that knows the pixel levels)
# make bench       run the benchmark scripts
# make figures     redraw the README's pictures (docs/*.png) from the shipped model
# make test-lowest every test with each dependency at the lowest version pyproject.toml allows, in .venv-lowest
#                  (e.g. PYTHON=python3.10; on Linux, LOWEST_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
#                  takes PyTorch's small CPU build)
#
# TORCH picks the PyTorch build. The default, torch==2.13.0 from PyPI, is the CUDA build on Linux (large) and the
# CPU one on macOS and Windows; for the small CPU-only build on Linux, or a given CUDA version:
#   make course TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
#   make course TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/CUDA_TAG"
# where CUDA_TAG is the one pytorch.org's install selector gives for your driver and that release (cu128, cu130, ...).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
# Extra arguments for JupyterLab, e.g. JUPYTER_ARGS=--allow-root in a container that runs as root.
JUPYTER_ARGS ?=
LOWEST_PIP_ARGS ?=
BIN := $(VENV)/bin

.PHONY: course test test-lowest notebooks lint html browser pretrained bench figures clean-venv

$(BIN)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[$*]"
	touch $@

course: $(BIN)/.installed-notebooks
	$(BIN)/jupyter lab $(JUPYTER_ARGS) notebooks/

test: $(BIN)/.installed-test
	$(BIN)/python -m pytest

test-lowest:
	rm -rf .venv-lowest
	$(PYTHON) -m venv .venv-lowest
	.venv-lowest/bin/python -m pip install --quiet packaging "tomli; python_version < '3.11'"
	.venv-lowest/bin/python tools/lowest_requirements.py > .venv-lowest/requirements.txt
	.venv-lowest/bin/python -m pip install --quiet $(LOWEST_PIP_ARGS) -r .venv-lowest/requirements.txt
	.venv-lowest/bin/python -m pip install --quiet --no-deps -e .
	.venv-lowest/bin/python -m pytest

lint: $(BIN)/.installed-test
	$(BIN)/ruff check ddpm_utils tests benchmarks notebooks tools
	$(BIN)/ruff format --check ddpm_utils tests benchmarks notebooks tools
	$(BIN)/python tools/notebook_hygiene.py --check

html: $(BIN)/.installed-test
	$(BIN)/python tools/build_html.py

browser: $(BIN)/.installed-test
	$(BIN)/python -m pytest tests/test_browser.py

notebooks: $(BIN)/.installed-test
	$(BIN)/python tools/run_notebooks.py

pretrained: $(BIN)/.installed-test
	$(BIN)/python -m ddpm_utils train --steps 5000 --seed 0 --overwrite --out runs/digits_full.pt
	$(BIN)/python -m ddpm_utils export runs/digits_full.pt ddpm_utils/checkpoints/digits.pt
	$(BIN)/python -m ddpm_utils.pretrain_variants cond --steps 5000 --seed 0 --out ddpm_utils/checkpoints/digits_cond.pt
	$(BIN)/python -m ddpm_utils.pretrain_variants hybrid-eps --steps 5000 --seed 0 --out ddpm_utils/checkpoints/digits_hybrid_eps.pt
	$(BIN)/python -m ddpm_utils.pretrain_variants hybrid --steps 5000 --seed 0 --out ddpm_utils/checkpoints/digits_hybrid.pt

bench: $(BIN)/.installed-test
	$(BIN)/python benchmarks/run_all.py

figures: $(BIN)/.installed-test
	$(BIN)/python tools/make_figures.py

clean-venv:
	rm -rf $(VENV)
