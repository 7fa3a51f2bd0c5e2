"""Vision: the key images (the selected level's sagittal and axial slices with the level drawn) and their way to a
model that sees images. The llama.cpp path runs with a projector built in the test (tests/vision_support.py: no
registry package ships a small vision GGUF with its projector) on the embedded SmolLM2; the server path sends the
images as OpenAI image parts, only when the server is declared vision-capable; the chat panel sends them through the
session."""
from __future__ import annotations

import base64
import io
import itertools
import json

import numpy as np
import pytest
from PIL import Image

from core.inference.backend import GenerationParams, backend_for_model
from core.inference.key_images import LEVEL_RGB, level_key_images
from core.inference.model_store import ModelStore
from core.spine.labelling import DiscLabel, SpineLabelling, VertebraLabel
from core.studies.volume import Volume
from core.synthetic.phantom import spine_phantom
from tests.test_deidentify import RecordingServer
from tests.vision_support import write_tiny_projector


@pytest.fixture(scope="module")
def phantom():
    ph = spine_phantom("L1", "L4", shape=(100, 100, 90), spacing=(1.5, 1.5, 1.5), ribs=False, noise_hu=0)
    names = list(ph.centres)
    discs = [DiscLabel(f"{a}-{b}", tuple((np.add(ph.centres[a], ph.centres[b]) / 2).tolist()), (0.0, 0.0, 1.0))
             for a, b in itertools.pairwise(names)]
    return ph, SpineLabelling([VertebraLabel(n, c) for n, c in ph.centres.items()], discs)


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _marked(rgb: np.ndarray) -> np.ndarray:
    return (np.abs(rgb - np.array(LEVEL_RGB)).max(axis=2) < 40)


def test_key_images_are_the_levels_sagittal_and_axial_slices_with_the_level_drawn(phantom):
    ph, labelling = phantom
    images = level_key_images(ph.volume, labelling, "L2")
    assert [im.caption.split()[0] for im in images] == ["Sagittal", "Axial"]
    sag, ax = (_rgb(im.png) for im in images)
    assert max(sag.shape[:2]) == 448 and max(ax.shape[:2]) == 448
    vol = ph.volume.as_closest_lps()
    z_frac = 1 - (vol.patient_to_voxel(ph.centres["L2"])[2] + 0.5) / vol.shape[2]  # superior at the top
    rows = np.nonzero(_marked(sag).any(axis=1))[0]
    assert abs(np.median(rows) / sag.shape[0] - z_frac) < 0.05  # the mark is at L2's height
    centre = ax[ax.shape[0] // 4: 3 * ax.shape[0] // 4, ax.shape[1] // 4: 3 * ax.shape[1] // 4].mean()
    assert _marked(ax).any() and centre > ax.mean()  # bone around the level's centre, marked
    l3 = _rgb(level_key_images(ph.volume, labelling, "L3")[0].png)
    assert np.median(np.nonzero(_marked(l3).any(axis=1))[0]) > np.median(rows)  # L3 is drawn lower
    assert len(level_key_images(ph.volume, labelling, "L2-L3")) == 2  # a disc
    assert level_key_images(ph.volume, labelling, "T12") == []  # not labelled: nothing is sent


def test_radiograph_is_sent_as_it_is_with_the_level_marked():
    data = np.zeros((80, 120, 1), np.float32)
    data[30:50, 40:80] = 1000
    xray = Volume(data, np.diag([0.5, 0.5, 1.0, 1.0]), modality="DX")
    lab = SpineLabelling([VertebraLabel("L3", (30.0, 20.0, 0.0))])
    images = level_key_images(xray, lab, "L3")
    assert len(images) == 1 and _marked(_rgb(images[0].png)).any()


@pytest.fixture(scope="module")
def projector(tmp_path_factory):
    return write_tiny_projector(tmp_path_factory.mktemp("vision") / "mmproj-tiny.gguf")


def test_the_model_store_pairs_the_built_projector_and_refuses_a_wrong_width(embedded_model, projector, tmp_path):
    check = ModelStore(tmp_path / "models").inspect(embedded_model, projector)
    assert check.ok and check.mmproj == projector
    wrong = write_tiny_projector(tmp_path / "mmproj-256.gguf", out_width=256)
    refused = ModelStore(tmp_path / "models").inspect(embedded_model, wrong)
    assert not refused.ok and "256" in " ".join(refused.problems) and "576" in " ".join(refused.problems)


def test_a_model_added_with_its_projector_loads_with_it(embedded_model, projector, tmp_path):
    from core.inference.choice import choose_model, describe_model
    from core.inference.server_backend import ServerSettings

    store = ModelStore(tmp_path / "models")
    added = store.add(embedded_model, link=True, mmproj=projector)
    choice = choose_model(added.path, settings=ServerSettings())
    assert choice.options["mmproj"] == added.mmproj
    backend = choice.create()
    info = backend.load()
    try:
        assert info.multimodal and f"projector {added.mmproj.name}" in describe_model(info)
    finally:
        backend.unload()
    assert "mmproj" not in choose_model(embedded_model, settings=ServerSettings()).options  # text model: none


def test_a_projector_of_the_wrong_width_is_refused_when_the_model_loads(embedded_model, tmp_path):
    from core.inference.backend import ModelLoadError

    wrong = write_tiny_projector(tmp_path / "mmproj-256.gguf", out_width=256)
    with pytest.raises(ModelLoadError, match="mmproj-256.gguf does not match the model .* 256-wide .* expects 576"):
        backend_for_model(embedded_model, mmproj=wrong, n_ctx=2048, n_threads=1).load()


def test_a_projector_that_crashes_libmtmd_is_refused_by_a_child_process_and_this_one_survives(embedded_model,
                                                                                             tmp_path):
    """libmtmd segfaults on a projector without its patch embedding: the test-load in a child process names the file
    and the crash, and the workstation's process (this test) goes on; a good projector still loads afterwards."""
    from core.inference.backend import ModelLoadError
    from core.inference.llama_backend import LlamaCppBackend
    from core.inference.projector_probe import probe_projector

    broken = write_tiny_projector(tmp_path / "broken-mmproj.gguf", leave_out="v.patch_embd.weight")
    with pytest.raises(ModelLoadError, match=r"broken-mmproj\.gguf.*crashed \(SIGSEGV\)"):
        LlamaCppBackend(embedded_model, mmproj_path=broken, n_ctx=512).load()
    unfinished = write_tiny_projector(tmp_path / "unfinished-mmproj.gguf", leave_out="v.blk.0.ffn_up.weight")
    assert "libmtmd could not load this projector" in probe_projector(embedded_model, unfinished)
    good = write_tiny_projector(tmp_path / "good-mmproj.gguf")
    assert probe_projector(embedded_model, good) is None
    backend = LlamaCppBackend(embedded_model, mmproj_path=good, n_ctx=512)
    try:
        assert backend.load().multimodal
    finally:
        backend.unload()


def test_llama_backend_encodes_key_images_through_the_projector(embedded_model, projector, phantom):
    ph, labelling = phantom
    backend = backend_for_model(embedded_model, mmproj=projector, n_ctx=2048, n_threads=1)
    info = backend.load()
    try:
        assert info.multimodal and info.mmproj_path == str(projector)
        params = GenerationParams(max_tokens=6, temperature=0.0, seed=0)
        question = "Describe the L2 vertebra in these images."
        images = [im.png for im in level_key_images(ph.volume, labelling, "L2")]
        assert len(images) == 2
        with_images = "".join(backend.chat_stream([{"role": "user", "content": question, "images": images}], params))
        seen = backend.last_stats.prompt_tokens
        without = "".join(backend.chat_stream([{"role": "user", "content": question}], params))
        assert with_images.strip() and without.strip()
        # each 28 px image is 4 embeddings from the projector, placed in the model's context before the text
        assert seen - backend.last_stats.prompt_tokens >= 2 * 4
    finally:
        backend.unload()


def test_chat_sends_the_key_images_only_to_a_vision_server(qtbot, tmp_path, phantom, monkeypatch):
    import threading

    import app.session
    from app.chat.chat_panel import ChatPanel
    from app.session import Session
    from core.consult import ConversationStore, StudyContext
    from core.inference.server_backend import ServerSettings

    ph, labelling = phantom
    drawn_on = []

    def recording(*args):
        drawn_on.append(threading.current_thread())
        return level_key_images(*args)
    monkeypatch.setattr(app.session, "level_key_images", recording)
    server = RecordingServer()
    try:
        for vision in (True, False):
            ServerSettings(enabled=True, url=server.url, timeout_s=30, n_ctx=16384, vision=vision).save()
            session = Session()
            session.image_source = lambda: (ph.volume, labelling)
            panel = ChatPanel(store=ConversationStore(tmp_path / f"library-{vision}.db"), retriever=None,
                              params=GenerationParams(max_tokens=16, temperature=0.0), session=session)
            panel.grounded = False
            qtbot.addWidget(panel)
            panel.set_study("study-V", StudyContext(modality="CT", levels_in_view=list(ph.centres)))
            with qtbot.waitSignal(panel.model_loaded, timeout=60_000) as loaded:
                panel.load_model()
            assert loaded.args[0].multimodal is vision
            panel.set_selected_level("L2")
            server.bodies.clear()
            with qtbot.waitSignal(panel.answer_finished, timeout=60_000):
                panel.ask("Is the L2 body height preserved?")
            body = json.loads(server.bodies[-1])
            parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
            urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
            if vision:
                assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
                sent = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).size for u in urls]
                expected = [Image.open(io.BytesIO(im.png)).size for im in level_key_images(ph.volume, labelling, "L2")]
                assert sent == expected
                assert drawn_on and threading.main_thread() not in drawn_on  # drawn on the worker, not the GUI
            else:
                assert urls == []  # a text-only server gets no images
            panel.shutdown()
            session.shutdown()
    finally:
        server.close()


def test_key_images_are_drawn_from_the_labelling_as_it_was_when_asked(phantom):
    """The labelling is copied when the question is asked: a level dragged while the images are drawn on the
    worker does not change what is sent."""
    from app.session import Session
    from core.inference.backend import BackendInfo

    ph, labelling = phantom
    session = Session()
    try:
        session.model_info = BackendInfo(backend="test", model_path="vision.gguf", multimodal=True)
        session.image_source = lambda: (ph.volume, labelling)
        draw = session.key_images_later("L2")
        before = [im.png for im in level_key_images(ph.volume, labelling, "L2")]
        moved = labelling.vertebra("L2")
        original = moved.centroid
        moved.centroid = tuple(c + 30.0 for c in original)
        try:
            assert draw() == before
            assert session.key_images("L2") != before  # drawn now: the moved level
        finally:
            moved.centroid = original
        session.model_info = BackendInfo(backend="test", model_path="text.gguf", multimodal=False)
        assert session.key_images_later("L2")() == []
    finally:
        session.shutdown()
