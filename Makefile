# Generative Models, hands-on: every command a student, instructor or CI needs.
# Each target creates the local virtual environment (.venv) first when it is missing or out of date.

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROFILE ?= full
NOTEBOOK ?=
# What the nbval targets run: every notebook, or a few (NBVAL=notebooks/05_diffusion.ipynb make test-notebooks).
NBVAL   ?= notebooks
# Tests run in parallel, one process per core (pytest-xdist), each on one thread: the fast profile's tiny models gain
# little from a second thread, and two processes keep both cores busy. JOBS=1 runs them one after another.
JOBS    ?= auto
PYTEST  := OMP_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS)
# The notebooks' checkpoints from the last `make test-notebooks`, which the student versions and the simulated-GPU
# run then load instead of training the same models again (only the training is skipped: every cell still runs).
# (An absolute path: nbval's kernels run in notebooks/, where a relative one would point elsewhere.)
NOTEBOOK_RUN := $(CURDIR)/build/test-notebooks
PRETRAINED_RUN := $(CURDIR)/build/test-pretrained
# The data world every notebook test runs in: the bundled 8x8 digits, whatever lies in data/ and whether or not this
# machine is online (`auto` would pick MNIST found on disk, or download it), unless the caller names one:
# COURSE_DATASET, or COURSE_MNIST_TEST_DIR as CI's second world does (`auto` then reads that folder).
DATA_WORLD := $(if $(strip $(COURSE_DATASET)$(COURSE_MNIST_TEST_DIR)),,COURSE_DATASET=digits)

.PHONY: help install lab test test-unit test-notebooks test-student test-pretrained lint format course student \
	grading benchmark pretrained clean

help:
	@echo "make lab        open the course in JupyterLab (installs first)"
	@echo "make test       the whole test suite: lint, unit and browser tests, every notebook under nbval (fast profile,"
	@echo "                then the full profile with the course's pretrained models)"
	@echo "make course     execute every notebook into HTML under build/html (PROFILE=fast for a quick build)"
	@echo "make student    generate the student notebooks under build/student and build/EXERCISES.md"
	@echo "make grading    write nbgrader's cell metadata into the notebooks, from their solution markers"
	@echo "make benchmark  time, memory and sample quality of every notebook (PROFILE=fast, NOTEBOOK=05)"
	@echo "make pretrained retrain the course's pretrained weights (COURSE_PRETRAINED=1 loads them)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# nbgrader's JupyterLab panels and server extensions belong on an instructor's hub, not in a student's lab (its
	@# command line, which grading uses, needs neither). README, "For instructors", says how to turn them back on.
	@$(VENV)/bin/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader >/dev/null 2>&1
	@for e in formgrader validate_assignment assignment_list course_list; do \
		$(VENV)/bin/jupyter server extension disable --sys-prefix nbgrader.server_extensions.$$e >/dev/null 2>&1; done
	@touch $(STAMP)

install: $(STAMP)

# Jupyter refuses to run as root unless told to (containers, CI machines); a normal user needs nothing extra.
lab: install
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_generative_vs_discriminative.ipynb

# The notebooks' nbgrader metadata must agree with their solution markers (make grading rewrites it).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) tools/grading.py

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test-unit: install
	$(call with_notebook_checkpoints, $(DATA_WORLD) $(PYTEST) tests)

# Fresh checkpoint and results folders: the notebooks train from scratch, as on a student's first run. Each
# notebook stays whole on one worker (--dist loadfile): its cells share one kernel.
test-notebooks: install
	rm -rf $(NOTEBOOK_RUN)
	$(DATA_WORLD) COURSE_PROFILE=fast COURSE_CHECKPOINT_DIR=$(NOTEBOOK_RUN)/checkpoints COURSE_RESULTS_DIR=$(NOTEBOOK_RUN)/results \
		$(PYTEST) --dist loadfile --nbval-lax --nbval-current-env $(NBVAL)

# The generated student notebooks, executed with only their stubs (also part of test-unit; CI reruns it per data set).
test-student: install
	$(call with_notebook_checkpoints, $(DATA_WORLD) $(PYTEST) tests/test_student_notebooks.py)

# Every notebook in the full profile, loading the course's finished models (COURSE_PRETRAINED=1) instead of training:
# the full profile's code paths, in the time the fast profile takes. Always on the digits, the one data set the course
# ships weights for (whatever the caller set: another data set would train every model live).
test-pretrained: install
	rm -rf $(PRETRAINED_RUN)
	COURSE_DATASET=digits COURSE_MNIST_TEST_DIR= COURSE_PRETRAINED=1 COURSE_PROFILE=full \
		COURSE_CHECKPOINT_DIR=$(PRETRAINED_RUN)/checkpoints COURSE_RESULTS_DIR=$(PRETRAINED_RUN)/results \
		$(PYTEST) --dist loadfile --nbval-lax --nbval-current-env $(NBVAL)
	@# A shipped model the notebooks set aside (*.stale.pt) no longer fits today's recipe: the notebook retrained it
	@# and passed, but every student with COURSE_PRETRAINED=1 would wait for that training. Rebuild: make pretrained.
	@stale="$$(find $(PRETRAINED_RUN)/checkpoints -name '*.stale.pt')"; if [ -n "$$stale" ]; then \
		echo "shipped weights that no longer fit their recipe (run make pretrained): $$stale"; exit 1; fi
	@# Every checkpoint this pass leaves must be a shipped one: any other file is a model it trained live.
	@live="$$(cd $(PRETRAINED_RUN)/checkpoints && for f in *.pt; do [ -e "$$f" ] || continue; \
		grep -q "\"$$f\"" $(CURDIR)/course_utils/pretrained_weights/MANIFEST.json || echo "$$f"; done)"; \
		if [ -n "$$live" ]; then echo "the pretrained pass trained models the course does not ship: $$live"; exit 1; fi

# Run $(1) with NOTEBOOK_TEST_CHECKPOINTS naming the last nbval run's checkpoints, when there are some.
with_notebook_checkpoints = if [ -d $(NOTEBOOK_RUN)/checkpoints ]; then \
		export NOTEBOOK_TEST_CHECKPOINTS="$(NOTEBOOK_RUN)/checkpoints"; fi; $(1)

# The notebooks first, so that the student versions in tests/ reuse their checkpoints; then every notebook once more in
# the full profile, through the pretrained switch.
test: lint test-notebooks test-unit test-pretrained

course: install
	$(PY) tools/build_course.py --profile $(PROFILE) $(if $(NOTEBOOK),--notebook $(NOTEBOOK))

student: install
	$(PY) tools/make_student.py $(if $(NOTEBOOK),--notebook $(NOTEBOOK))

grading: install
	$(PY) tools/grading.py --write

benchmark: install
	$(PY) tools/benchmark.py --profile $(PROFILE) $(if $(NOTEBOOK),--notebook $(NOTEBOOK))

# Retrain the course's pretrained weights (every notebook, full profile, on the digits) and record their SHA-256.
pretrained: install
	$(PY) tools/build_pretrained.py

clean:
	rm -rf build .pytest_cache .ruff_cache
