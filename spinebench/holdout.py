"""The patients (cases) SpineBench is built from, held out of every training split.

Curation (`curation.export`) pins every item grounded in one of these cases to its ``bench`` split, and the
SpineBench builder takes its image, report and consultation items from these cases only, so a model trained on the
curated ``train``/``val`` files has never seen a benchmark patient. The other sample cases feed training.
Chosen to cover each kind of study once: a thoracolumbar CT, a lumbar CT crop and a cervical MR.
"""
from __future__ import annotations

BENCHMARK_CASES: frozenset[str] = frozenset({
    "verse:sub-verse004",      # thoracolumbar CT (T9-L5), VerSe
    "tptbox:sample_ct_L3",     # lumbar CT crop (L2-L4), TPTBox
    "sct:errsm_30",            # cervical T2 MR (C2-C5), Spinal Cord Toolbox
})
