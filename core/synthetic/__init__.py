"""Synthetic studies with known answers (phantoms): used by tests, benchmarks, screenshots and the training
synthesiser. Nothing here is a patient; nothing here is used to label a patient's image."""
