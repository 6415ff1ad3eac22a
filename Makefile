# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs guardrail, runs the offline quickstart on SQLite
#   make test   the same install, then the whole test suite (starts PostgreSQL if it is down)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint bench postgres fonts browser clean
INTEROP := tests/interop/node_modules/.installed-stamp

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# An independent C2PA implementation (npm, pure TypeScript) for the interoperability tests.
# npm install, not npm ci: the registry mirror omits optional platform packages from the lock.
$(INTEROP): tests/interop/package.json tests/interop/package-lock.json
	npm install --prefix tests/interop --no-audit --no-fund --silent
	touch $(INTEROP)

demo: $(STAMP)
	$(PY) examples/quickstart.py

lint: $(STAMP)
	$(VENV)/bin/ruff check guardrail tests examples bench migrations
	$(VENV)/bin/ruff format --check guardrail tests examples bench migrations
	$(VENV)/bin/mypy guardrail

# pytest exits 5 when it collects no tests; that is not a failure of the code under test.
test: $(STAMP) $(INTEROP) postgres fonts browser lint
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  (command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | tail -n1) main start) || \
	  echo "warning: PostgreSQL is not running on 127.0.0.1:5432; its tests will fail"

# Debian's chromium, which Playwright drives to test the report page (tests/report).
browser:
	@command -v chromium >/dev/null || \
	  (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get install -y -q chromium >/dev/null) || \
	  echo "warning: chromium is missing (apt-get install chromium); the report page tests will fail"

# A CJK font (Debian's fonts-wqy-microhei, Apache-2.0 / GPL) for the visible label's CJK test.
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
fonts:
	@test -f $(CJK_FONT) || \
	  (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get install -y -q fonts-wqy-microhei >/dev/null) || \
	  echo "warning: $(CJK_FONT) is missing (apt-get install fonts-wqy-microhei); the CJK label test will fail"

bench: $(STAMP)
	$(PY) bench/policy_eval.py
	$(PY) bench/wrapper_overhead.py
	$(PY) bench/import_time.py
	$(PY) bench/provenance.py
	$(PY) bench/full_call.py   # the whole call on real image sizes, 10k references
	$(PY) bench/early_abort.py   # what stopping a blocked call at a latent preview saves
	$(PY) bench/trace.py
	$(PY) bench/watermark.py
	$(PY) bench/policy_ops.py
	$(PY) bench/screening_speed.py
	$(PY) bench/screening_eval.py
	$(PY) bench/screening_eval.py --distractors 10000   # about 8 minutes: 10k references
	$(PY) bench/audit_log.py   # about 10 minutes: fills 1M events on SQLite and on PostgreSQL
	$(PY) bench/report.py   # about 5 minutes: the report page of 1M events, SQLite and PostgreSQL

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .quickstart tests/interop/node_modules
