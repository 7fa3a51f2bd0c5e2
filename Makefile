# The two commands of README: `make run` (workstation on the bundled sample) and `make test` (whole test suite).
XVFB = xvfb-run -a -s "-screen 0 1600x1000x24"

.PHONY: run test setup setup-dev lint screenshots

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

# README's pictures, each from its own command: the GUI tests that draw them (into docs/screenshots only here; a plain
# test run keeps them in its temporary folders) and the screenshot commands.
SHOTS = docs/screenshots
screenshots: setup-dev
	SPINEMED_SCREENSHOTS_DIR=$(CURDIR)/$(SHOTS) QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python -m pytest -q \
		tests/test_app_levels.py::test_screenshot_of_levels_in_2d_and_3d \
		tests/test_app_measure.py::test_screenshot_of_a_slip_on_the_lumbar_ct_sample \
		tests/test_chat_panel.py::test_chat_panel_streams_stops_and_never_blocks \
		tests/test_report_draft.py::test_draft_exports_to_every_format_and_reads_back \
		tests/test_report_editor.py::test_accept_reject_edit_and_versions \
		tests/test_app_curation_review.py::test_accept_reject_edit_update_the_store_and_counts \
		tests/test_app_session.py::test_status_bar_names_the_local_model_and_the_window_shares_it \
		tests/test_app_session.py::test_server_in_the_status_bar_and_only_deidentified_context_sent
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python -m app.screenshot --out $(SHOTS)/main_window.png \
		--question "How is the T11-T12 disc?" --level T11-T12
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python -m app.screenshot --cited-answer
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python -m app.screenshot --models-dialog
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python scripts/xray_screenshot.py
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python scripts/xray_screenshot.py --pelvis
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python scripts/xray_screenshot.py --viewer
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python scripts/xray_screenshot.py --calibration
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python scripts/xray_screenshot.py --sagittal
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python scripts/levels_screenshot.py
	QT_QPA_PLATFORM=xcb $(XVFB) .venv/bin/python scripts/levels_screenshot.py --backend learned
