"""Curation: rebuild the SpineMed instruction data - sources, two-stage generation, review, quality gates, export.

No Qt, no VTK (import-linter contract). The pieces, in the order data flows through them:

- ``store``: one SQLite file (sqlite-utils, named migrations) with sources, chunks, items, drafts, revisions,
  reviews; provenance on every item.
- ``sources``: the knowledge base (``knowledge``), local case folders (``cases``) with DICOM de-identification
  (``deid``, PS3.15 Basic Profile), importers for VerSe, TotalSegmentator, SPIDER (``mha`` reader) and RSNA 2024.
- ``generate``: item schemas, prompt templates (resources/curation_prompts), generators (LLM-free templates over
  passages, label-grounded items and key images from cases, the local GGUF or an OpenAI-compatible endpoint with
  schema-constrained JSON), the revise stage, and the resumable pipeline.
- ``quality``: schema, near duplicates (MinHash), MCQ answer positions, PHI scan, case-level splits, leakage.
- ``review``: review queue, decisions, Cohen's kappa between reviewers.
- ``export`` / ``datasheet``: chat-messages JSONL with image paths, a Hugging Face dataset, a datasheet with a plot.
- ``cli``: the ``spinemed-curate`` command; ``build_dataset``: the project's dataset (spinemed-curated-v2).
"""
