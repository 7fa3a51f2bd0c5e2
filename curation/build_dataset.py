"""Rebuild the project's curated dataset (resources/datasets/spinemed-curated-v2) from the knowledge base and the
labelled sample studies:

    .venv/bin/python -m curation.build_dataset [--samples ../shared/data/spine-samples] [--llm-jobs 60]
                                               [--store build/curation/curation.db] [--out resources/datasets/...]

Steps: ingest every knowledge document and every labelled sample case (DICOM de-identified), generate template and
label-grounded items, LLM-draft ``--llm-jobs`` items with the embedded model (draft + revise), run the gates, export
the human-reviewed items plus the ``auto_gated`` ones (labelled so). The store is kept under build/ (not committed):
rerunning resumes, and a reviewer can review it with ``spinemed-curate --db build/curation/curation.db review``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.paths import REPO_ROOT
from curation.cli import salt_for
from curation.export import export
from curation.generate.llm import LlamaJsonGenerator
from curation.generate.pipeline import Pipeline
from curation.quality import run_gates
from curation.sources.cases import import_case_folder, store_case
from curation.sources.knowledge import ingest_knowledge
from curation.store import CurationStore
from spinebench.holdout import BENCHMARK_CASES

# sample folder -> (case id, dataset family)
SAMPLE_CASES = {
    "verse004_labels_only_T9-L5": ("verse:sub-verse004", "verse"),
    "tptbox_ct_lumbar_crop_L2-L4": ("tptbox:sample_ct_L3", "tptbox"),
    "tptbox_mri_cervical_crop_C5-C7": ("tptbox:sample_mri_C6", "tptbox"),
    "sct_cervical_t2_mri_C2-C5": ("sct:errsm_30", "sct"),
    "ts_ct_dicom_T11-T12": ("totalseg:example_ct_dicom", "totalseg"),
    "ts_mr_abdomen_generic_vertebrae_discs": ("totalseg:example_mr", "totalseg"),
}
DEFAULT_OUT = REPO_ROOT / "resources" / "datasets" / "spinemed-curated-v2"
DEFAULT_STORE = REPO_ROOT / "build" / "curation" / "curation.db"
DEFAULT_SAMPLES = REPO_ROOT.parent / "shared" / "data" / "spine-samples"


def build(samples: Path, store_path: Path, out: Path, llm_jobs: int, model: Path | None, log=print,
          hf: bool = False) -> dict:
    t0 = time.perf_counter()
    store = CurationStore(store_path)
    salt = salt_for(store_path)
    docs, chunks = ingest_knowledge(store)
    log(f"knowledge base: {docs} documents, {chunks} chunks")
    for folder, (case_id, dataset) in SAMPLE_CASES.items():
        path = samples / folder
        if not path.is_dir():
            log(f"sample {folder} not found: skipped")
            continue
        case, notes = import_case_folder(path, case_id=case_id, workdir=store_path.parent, salt=salt,
                                         dataset=dataset)
        store.add_phi_token_hashes(case.extra.pop("name_hashes", {}))
        store_case(store, case)
        log(f"case {case_id}: {len(case.vertebrae)} vertebrae {case.levels}" + "".join(f"\n  note: {n}" for n in notes))
    pipe = Pipeline(store, store_path.parent / "images")
    pipe.run_templates()
    pipe.run_grounded()
    log(f"templates + labels: {dict(pipe.counts)}")
    timing = {}
    if llm_jobs and model is not None:
        gen = LlamaJsonGenerator(model, n_threads=1)
        llm = Pipeline(store, store_path.parent / "images", generator=gen, max_tokens=256)
        t = time.perf_counter()
        llm.run_llm(("mcq", "open_qa"), limit=llm_jobs)
        timing = {"llm_jobs": llm.counts["llm_drafted"] + llm.counts["llm_failed"],
                  "llm_seconds": round(time.perf_counter() - t, 1)}
        log(f"LLM: {dict(llm.counts)} in {timing['llm_seconds']} s")
        gen.close()
    gates = run_gates(store, salt=salt)
    log(f"gates: {gates}")
    # the committed export has no hf/ copy (it would double the bytes): `spinemed-curate export` writes it
    result = export(store, out, image_root=store_path.parent / "images", include=("auto_gated",), hf=hf,
                    title="SpineMed curated dataset v2", held_out_cases=BENCHMARK_CASES)
    summary = {"counts": result.counts, "leakage_ok": result.leakage_ok, "gates": gates["counts"], **timing,
               "seconds": round(time.perf_counter() - t0, 1)}
    store.close()
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    p.add_argument("--store", type=Path, default=DEFAULT_STORE)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--llm-jobs", type=int, default=60,
                   help="LLM draft+revise jobs to run in this call: the next N not yet done in the store (a rerun "
                        "adds N more; 0 re-exports what the store has)")
    p.add_argument("--model", type=Path, default=None)
    args = p.parse_args(argv)
    model = args.model
    if model is None and args.llm_jobs:
        from core.inference.default_model import find_default_model

        model = find_default_model()
    summary = build(args.samples, args.store, args.out, args.llm_jobs, model)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
