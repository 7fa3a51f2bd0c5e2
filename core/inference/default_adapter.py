"""The workstation's default LoRA adapter: the SpineMed fine-tune of the embedded base, shipped in resources/models/.

``resources/models/default_adapter.json`` names the adapter GGUF (relative to that folder) and is written only when the
adapter beat the base model on SpineBench (see its model card). The adapter is used only on top of the base it was
trained on: its sidecar JSON (written by ``training.export.write_sidecar``) names the base file, size and sha256, and
:func:`adapter_matches` compares them with the model about to be loaded. Anything missing or mismatched means "no
adapter" and the base runs alone; :func:`default_adapter_status` says why, for the UI and ``spinemed models``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core import paths
from core.hashing import sha256_file

SHIPPED_DIR = paths.RESOURCES / "models"
POINTER = "default_adapter.json"


@dataclass(frozen=True)
class AdapterStatus:
    adapter: Path | None  # the adapter to load, or None
    reason: str  # why (shown in tooltips and `spinemed models`)


def read_sidecar(adapter: Path) -> dict | None:
    p = adapter.with_suffix(".json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == "lora-adapter" else None


def adapter_matches(adapter: Path, base: Path, check_hash: bool = False) -> tuple[bool, str]:
    """Whether ``adapter``'s sidecar names ``base`` (file name and size; sha256 too when ``check_hash``)."""
    side = read_sidecar(adapter)
    if side is None:
        return False, f"{adapter.name}: no sidecar {adapter.with_suffix('.json').name} naming its base model"
    want = side.get("base") or {}
    try:
        size = base.stat().st_size
    except OSError as exc:
        return False, f"{base}: {exc.strerror or exc}"
    if want.get("file") != base.name or want.get("size") != size:
        return False, f"{adapter.name} was trained on {want.get('file')}, not on {base.name}"
    if check_hash and want.get("sha256") != sha256_file(base):
        return False, f"{base.name} differs from the file {adapter.name} was trained on (sha256)"
    return True, ""


def default_adapter_status(base: Path | str | None, folder: Path = SHIPPED_DIR) -> AdapterStatus:
    """The shipped default adapter for ``base``, or None and the reason."""
    if base is None:
        return AdapterStatus(None, "no base model")
    pointer = folder / POINTER
    if not pointer.is_file():
        return AdapterStatus(None, f"no default adapter is shipped ({pointer} absent): the base model runs alone")
    try:
        rel = json.loads(pointer.read_text(encoding="utf-8"))["adapter"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return AdapterStatus(None, f"{pointer}: unreadable ({exc})")
    adapter = folder / rel
    if not adapter.is_file():
        return AdapterStatus(None, f"{pointer} names {rel}, which is missing")
    ok, why = adapter_matches(adapter, Path(base))
    if not ok:
        return AdapterStatus(None, why)
    return AdapterStatus(adapter, f"default adapter {adapter.name} (SpineMed LoRA on {Path(base).name})")


def find_default_adapter(base: Path | str | None) -> Path | None:
    return default_adapter_status(base).adapter
