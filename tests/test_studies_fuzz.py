"""Fuzzing the study loaders with hypothesis: mutants of real images end in a Volume or a clean, plain message.

Seeds are the bundled JPEG 2000 CT (as stored and uncompressed), NIfTI-1/2 and JPEG/PNG made from it, plus the
../shared samples when present (see ``tests/studies_fuzz_support.py``). Each mutant is scanned and loaded in a child
process capped at 4 GB of address space, with a time limit, so a memory blow-up or a hang fails the test instead of
the machine. The longer run with counts per outcome is ``benchmarks/fuzz_loaders.py``.
"""
from __future__ import annotations

import itertools
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.studies_fuzz_support import HypothesisChooser, LoaderWorker, make_seeds, mutate, write_case

EXAMPLES = 200  # per kind: about 10 s each on a 2-core machine


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return make_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


@pytest.fixture(scope="module")
def worker():
    with LoaderWorker(mem_cap=4 << 30, timeout=60.0) as running:
        yield running


def test_every_seed_opens_unchanged(seeds, worker, tmp_path):
    for n, seed in enumerate(s for kind in seeds.values() for s in kind):
        outcome, detail = worker.run(write_case(tmp_path / "cases", seed, seed.data, n), tmp_path / "extract")
        assert outcome == "loaded", (seed.name, outcome, detail)


@pytest.mark.parametrize("kind", ["dicom", "nifti", "raster"])
def test_mutants_end_in_a_volume_or_a_clean_error(kind, seeds, worker, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"fuzz-{kind}")
    numbers = itertools.count()
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def one_mutant(data):
        chooser = HypothesisChooser(data)
        seed = chooser.choice(seeds[kind])
        case = write_case(root, seed, mutate(kind, seed.data, chooser), next(numbers))
        outcome, detail = worker.run(case, root / "extract")
        shutil.rmtree(case, ignore_errors=True)
        seen[outcome] = seen.get(outcome, 0) + 1
        assert outcome in ("loaded", "clean error"), f"{outcome}: {detail}"

    one_mutant()
    # The mutations reach both ends: some mutants still open, others are refused with a reason.
    assert seen.get("loaded", 0) > 0 and seen.get("clean error", 0) > 0, seen
