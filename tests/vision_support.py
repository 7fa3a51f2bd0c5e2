"""A vision projector (mmproj GGUF) built here with the ``gguf`` package, for the image path of the llama.cpp backend.

No registry package ships a small vision GGUF with its projector, so the tests build the smallest projector libmtmd
loads: a LLaVA-1.5-style CLIP encoder ("mlp" projector type) of one block, 16 wide, 28 px images in 14 px patches
(4 image tokens), random weights (seeded), and a two-layer MLP up to the text model's embedding width (576 for the
embedded SmolLM2-135M). It proves the plumbing (key images encoded and decoded into the model), not that a model
reads them: the weights are noise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_projector(path: Path, out_width: int = 576, seed: int = 0, leave_out: str | None = None) -> Path:
    """The projector at ``path``; ``leave_out`` names a tensor not written (a broken file libmtmd crashes on)."""
    import gguf

    n_embd, n_ff, n_head, image_size, patch = 16, 32, 2, 28, 14
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    for key, value in (("image_size", image_size), ("patch_size", patch), ("embedding_length", n_embd),
                       ("feed_forward_length", n_ff), ("projection_dim", out_width), ("block_count", 1),
                       ("attention.head_count", n_head)):
        w.add_uint32(f"clip.vision.{key}", value)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    rng = np.random.default_rng(seed)

    def noise(name: str, *shape: int, std: float = 0.02) -> None:
        values = (rng.standard_normal(shape) * std).astype(np.float32)  # drawn even when left out: same seed, same rest
        if name != leave_out:
            w.add_tensor(name, values)

    def ones(name: str, n: int) -> None:
        if name != leave_out:
            w.add_tensor(name, np.ones(n, np.float32))

    noise("v.patch_embd.weight", n_embd, 3, patch, patch)
    noise("v.class_embd", n_embd)
    noise("v.position_embd.weight", (image_size // patch) ** 2 + 1, n_embd)
    ones("v.pre_ln.weight", n_embd)
    noise("v.pre_ln.bias", n_embd)
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        noise(f"v.blk.0.{name}.weight", n_embd, n_embd)
        noise(f"v.blk.0.{name}.bias", n_embd)
    for name in ("ln1", "ln2"):
        ones(f"v.blk.0.{name}.weight", n_embd)
        noise(f"v.blk.0.{name}.bias", n_embd)
    noise("v.blk.0.ffn_up.weight", n_ff, n_embd)
    noise("v.blk.0.ffn_up.bias", n_ff)
    noise("v.blk.0.ffn_down.weight", n_embd, n_ff)
    noise("v.blk.0.ffn_down.bias", n_embd)
    noise("mm.0.weight", out_width, n_embd)
    noise("mm.0.bias", out_width)
    noise("mm.2.weight", out_width, out_width, std=0.5)  # image embeddings as large as word embeddings
    noise("mm.2.bias", out_width, std=0.5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
