"""SpineBench: a level-aware benchmark and evaluator for any local model (no Qt).

- ``schema``: the benchmark item (one JSON line) and loading a benchmark folder.
- ``studies``: labelled studies (image + label map) -> named vertebrae, discs and label-mask measurements.
- ``render`` / ``levelgen``: level-identification items from labelled studies (PNG views with markers) and text
  items whose answers follow from ``core.spine`` by construction.
- ``reports`` / ``dialogue``: report-generation prompts and multi-turn consultations, with deterministic checks.
- ``curated``: reader of the curation export (chat JSONL) for pathology and surgical-planning items, and the
  case / near-duplicate leakage check against the training split.
- ``build`` / ``datasheet``: regenerates ``resources/spinebench/v2`` deterministically, with its datasheet.
- ``extract``: multiple-choice answer extraction; ``judge``: the 10-dimension report judge.
- ``metrics``: accuracies, report scores, bootstrap intervals, McNemar and paired bootstrap.
- ``clients``: candidate/judge backends (GGUF, HF + adapter, OpenAI-compatible endpoint).
- ``runner`` / ``results`` / ``cli``: ``spinebench run | compare | build | import``.
- ``importers``: external benchmark files (the public X-ray multiple-choice SpineBench layout).
"""
