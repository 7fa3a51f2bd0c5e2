"""Side panels of the main window: study browser, study info."""
