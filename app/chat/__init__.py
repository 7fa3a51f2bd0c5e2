"""The consultation UI: ``chat_panel`` (Qt widget beside the viewer) and ``terminal`` (headless CLI, no Qt).

Importing this package imports neither: the CLI must run without a display.
"""
