"""Models the user brings: header checks, memory fit, add (copy / link, sha256), remove, use, and the refusals, on the
real embedded GGUF and files made from it (a truncated copy, a junk file, projectors written here with gguf)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from core.inference.gguf_header import read_gguf
from core.inference.model_fit import GiB, MiB, memory_fit
from core.inference.model_store import ModelStore, ModelStoreError, paired_projector
from core.inference.registry import ModelRegistry
from core.tasks import CancelToken

BIG_RAM = 64 * GiB


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEMED_HOME", str(tmp_path / "home"))
    registry = ModelRegistry(tmp_path / "home" / "models.json")
    return ModelStore(tmp_path / "home" / "models", registry)


@pytest.fixture
def usb(tmp_path, embedded_model) -> Path:
    """A 'USB stick' folder with a copy of the embedded model."""
    folder = tmp_path / "usb"
    folder.mkdir()
    dest = folder / "smollm2-135m-q4_1.gguf"
    dest.write_bytes(embedded_model.read_bytes())
    return dest


def write_projector(path: Path, projection_dim: int) -> Path:
    w = GGUFWriter(str(path), "clip")
    w.add_string("general.type", "mmproj")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_uint32("clip.vision.projection_dim", projection_dim)
    w.add_uint32("clip.vision.embedding_length", 32)
    w.add_tensor("mm.0.weight", np.ones((projection_dim, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_header_facts_of_the_embedded_model(store, embedded_model):
    check = store.inspect(embedded_model, ram_bytes=BIG_RAM, vram_bytes=None)
    assert check.ok, check.problems
    facts = check.facts()
    assert facts["architecture"] == "llama"
    assert facts["quantisation"] == "Q4_1"
    assert facts["context length"] == "8192"
    assert facts["chat template"] == "present"
    assert facts["parameters"] == "135 M"
    assert facts["vision projector"] == "none"
    assert "no GPU found" in facts["memory"]


def test_memory_and_gpu_layers(embedded_model):
    header = read_gguf(embedded_model)
    fit = memory_fit(header, 4096, ram_bytes=BIG_RAM, vram_bytes=None)
    # 30 blocks x 4096 tokens x 3 kv heads x 64 dims x 2 (K, V) x 2 bytes
    assert fit.kv_cache_bytes == 30 * 4096 * 3 * 64 * 2 * 2
    assert fit.weights_bytes == header.file_size - header.data_offset
    assert fit.needed_bytes > fit.weights_bytes + fit.kv_cache_bytes
    assert fit.gpu_layers == 0 and fit.fits
    assert memory_fit(header, 4096, ram_bytes=BIG_RAM, vram_bytes=8 * GiB).gpu_layers == 31  # all + output
    few = memory_fit(header, 4096, ram_bytes=BIG_RAM, vram_bytes=512 * MiB + 10 * MiB)
    assert 0 < few.gpu_layers < 30
    assert few.cpu_bytes_needed < fit.cpu_bytes_needed
    assert memory_fit(header, 100_000, ram_bytes=BIG_RAM, vram_bytes=None).n_ctx == 8192  # capped at the model's


def test_add_copies_checks_and_persists_the_choice(store, usb):
    fractions = []
    added = store.add(usb, progress=lambda f, msg: fractions.append(f), ram_bytes=BIG_RAM, vram_bytes=None)
    assert added.path == store.models_dir / usb.name and not added.path.is_symlink()
    assert added.sha256 == hashlib.sha256(usb.read_bytes()).hexdigest()
    assert json.loads((store.models_dir / (usb.name + ".spinemed.json")).read_text())["sha256"] == added.sha256
    assert fractions and fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    assert not list(store.models_dir.glob(".*.part"))
    store.use(added.name)
    again = ModelRegistry(store.registry.settings_path)  # a new session reads the choice back
    assert again.selected() == added.path.resolve()
    with pytest.raises(ModelStoreError, match="already in the models folder"):
        store.add(usb, ram_bytes=BIG_RAM, vram_bytes=None)
    store.remove(added.name)
    assert not added.path.exists()
    assert ModelRegistry(store.registry.settings_path).selection()["global"] is None


def test_link_instead_of_copy(store, usb):
    added = store.add(usb, link=True, ram_bytes=BIG_RAM, vram_bytes=None)
    assert added.path.is_symlink() and added.path.resolve() == usb.resolve()
    store.remove(added.name)
    assert usb.is_file() and not added.path.is_symlink()  # removing the link keeps the user's file


def test_cancelled_copy_leaves_nothing(store, usb):
    token = CancelToken()
    token.cancel()
    with pytest.raises(ModelStoreError, match="cancelled"):
        store.add(usb, cancel=token, ram_bytes=BIG_RAM, vram_bytes=None)
    assert not any(store.models_dir.iterdir())


def test_refuses_a_truncated_gguf(store, usb):
    cut = usb.with_name("cut.gguf")
    cut.write_bytes(usb.read_bytes()[: usb.stat().st_size // 2])
    with pytest.raises(ModelStoreError, match=r"cut\.gguf: truncated GGUF file"):
        store.add(cut, ram_bytes=BIG_RAM, vram_bytes=None)
    assert not store.models_dir.exists() or not any(store.models_dir.iterdir())


def test_refuses_a_non_gguf_file(store, tmp_path):
    junk = tmp_path / "model.gguf"
    junk.write_bytes(b"<html>404 Not Found</html>" * 10)
    with pytest.raises(ModelStoreError, match=r"model\.gguf: not a GGUF model file"):
        store.add(junk)


def test_refuses_a_model_too_big_for_memory(store, usb):
    check = store.inspect(usb, ram_bytes=300 * MiB, vram_bytes=None)
    assert not check.ok and "too big for this machine" in check.problems[0]
    with pytest.raises(ModelStoreError, match="too big for this machine"):
        store.add(usb, ram_bytes=300 * MiB, vram_bytes=None)
    # the same file fits when most layers go to a GPU
    assert store.inspect(usb, ram_bytes=300 * MiB, vram_bytes=4 * GiB).ok


def test_projector_paired_or_refused(store, usb):
    good = write_projector(usb.with_name("smollm2-mmproj-f32.gguf"), 576)  # the model's embedding width
    check = store.inspect(usb, ram_bytes=BIG_RAM, vram_bytes=None)  # found beside the model
    assert check.ok and check.mmproj == good
    added = store.add(usb, ram_bytes=BIG_RAM, vram_bytes=None)
    assert paired_projector(added.path) == store.models_dir / good.name
    store.remove(added.name)
    assert not (store.models_dir / good.name).exists()

    bad = write_projector(usb.with_name("other-mmproj.gguf"), 1024)
    with pytest.raises(ModelStoreError, match="does not match the model.*1024-wide.*expects 576"):
        store.add(usb, mmproj=bad, ram_bytes=BIG_RAM, vram_bytes=None)
    with pytest.raises(ModelStoreError, match="not a model"):
        store.add(good, ram_bytes=BIG_RAM, vram_bytes=None)


def test_remove_and_use_unknown_names(store):
    with pytest.raises(ModelStoreError, match="no such model"):
        store.remove("nothing-here")
    with pytest.raises(ModelStoreError, match="no such model"):
        store.use("nothing-here")


def test_cli_check_add_use_remove(tmp_path, monkeypatch, usb, capsys):
    from app.cli import main

    monkeypatch.setenv("SPINEMED_HOME", str(tmp_path / "home"))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"\0" * 100)
    assert main(["models", "add", str(junk)]) == 2
    assert "junk.gguf: not a GGUF model file" in capsys.readouterr().err
    assert main(["models", "check", str(usb)]) == 0
    out = capsys.readouterr().out
    assert "quantisation      Q4_1" in out and ("GPU layers that fit" in out or "no GPU found" in out)
    assert main(["models", "add", str(usb), "--link"]) == 0
    assert "linked" in capsys.readouterr().out
    assert main(["models", "use", usb.stem]) == 0
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert f"model used: {usb.resolve()}" in listing
    assert any(line.startswith("* ") and usb.name in line for line in listing.splitlines())
    assert main(["models", "remove", usb.stem]) == 0
    assert main(["models", "use", "gone"]) == 2
    assert "gone: no such model" in capsys.readouterr().err
