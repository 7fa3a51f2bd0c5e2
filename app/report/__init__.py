"""Report editor (Qt) and the headless ``spinemed report`` command (app.report.cli, no Qt)."""
