# The two commands of README: `make run` (workstation on the bundled sample) and `make test` (whole test suite).
XVFB = xvfb-run -a -s "-screen 0 1600x1000x24"

.PHONY: run test setup setup-dev lint

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh --dev --train

run: setup
	.venv/bin/spinemed open resources/samples/ct_dicom_T11-T12

test: setup-dev
	.venv/bin/lint-imports
	.venv/bin/ruff check .
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python -m pytest -q
