"""Will a GGUF model run on this machine? Memory it needs against RAM and VRAM, and the GPU layers that fit.

Estimated from the header alone (nothing is loaded): the weights are the tensor data as stored; the KV cache is
``2 (K and V) x layers x context x kv_heads x head_dim x 2 bytes`` (llama.cpp's default f16 cache); a fixed margin
covers llama.cpp's compute buffers. Layers offloaded to a GPU each take their own weights and their share of the KV
cache; the output layer counts as one more layer, as llama.cpp counts it ("31/31 layers" for a 30-block model).

    fit = memory_fit(read_gguf(path), n_ctx=4096)       # RAM / VRAM detected; pass ram_bytes=/vram_bytes= to override
    fit.fits, fit.gpu_layers, fit.summary()
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.inference.gguf_header import GGUFHeader, read_gguf

MiB = 2**20
GiB = 2**30
COMPUTE_MARGIN = 256 * MiB  # llama.cpp compute buffers and scratch at a few thousand tokens of context
GPU_RESERVE = 512 * MiB  # CUDA context, cuBLAS workspace and the display's own use of the card
DEFAULT_CTX = 4096  # what the workstation asks for (a model's own context can be far longer)
_BLOCK = re.compile(r"^blk\.(\d+)\.")


def total_ram() -> int:
    """Physical memory of this machine in bytes."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil comes with the app's dependencies
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_ram() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        return None


def detect_vram() -> int | None:
    """Memory of the largest NVIDIA GPU in bytes (via nvidia-smi), or None when there is none or it cannot be read."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    sizes = [int(x) for x in re.findall(r"\d+", out)]
    return max(sizes) * MiB if sizes else None


def kv_bytes_per_layer(header: GGUFHeader, n_ctx: int) -> int:
    arch = header.architecture
    n_embd = int(header.get(f"{arch}.embedding_length") or 0)
    n_head = int(header.get(f"{arch}.attention.head_count") or 0) or 1
    n_kv = int(header.get(f"{arch}.attention.head_count_kv") or n_head)
    head_dim = int(header.get(f"{arch}.attention.key_length") or (n_embd // n_head if n_embd else 0))
    return 2 * n_ctx * n_kv * head_dim * 2


@dataclass
class MemoryFit:
    weights_bytes: int
    kv_cache_bytes: int
    needed_bytes: int  # weights + KV cache + compute margin, all on the CPU
    n_ctx: int
    n_layers: int  # llama.cpp's count: blocks + the output layer
    ram_bytes: int
    available_ram_bytes: int | None
    vram_bytes: int | None
    gpu_layers: int  # layers that fit in VRAM (0 without a GPU)

    @property
    def fits(self) -> bool:
        """Runs at all: on the CPU in RAM, or with what does not go to the GPU in RAM."""
        return self.cpu_bytes_needed <= self.ram_bytes

    @property
    def all_on_gpu(self) -> bool:
        return self.n_layers > 0 and self.gpu_layers >= self.n_layers

    @property
    def cpu_bytes_needed(self) -> int:
        """RAM needed with ``gpu_layers`` offloaded (the GPU share leaves RAM)."""
        if not self.n_layers:
            return self.needed_bytes
        share = (self.weights_bytes + self.kv_cache_bytes) * self.gpu_layers // self.n_layers
        return self.needed_bytes - share

    def summary(self) -> str:
        ram = f"{self.ram_bytes / GiB:.1f} GiB RAM"
        vram = f", {self.vram_bytes / GiB:.1f} GiB VRAM" if self.vram_bytes else ", no GPU found"
        text = (f"needs {self.needed_bytes / GiB:.2f} GiB at context {self.n_ctx} (weights "
                f"{self.weights_bytes / GiB:.2f} GiB, KV cache {self.kv_cache_bytes / GiB:.2f} GiB); this machine: "
                f"{ram}{vram}")
        if self.vram_bytes:
            text += f"; GPU layers that fit: {self.gpu_layers}/{self.n_layers}"
        return text

    def refusal(self) -> str | None:
        """Why the model cannot run here, or None."""
        if self.fits:
            return None
        return (f"too big for this machine: it needs {self.cpu_bytes_needed / GiB:.1f} GiB of RAM at context "
                f"{self.n_ctx}{' with ' + str(self.gpu_layers) + ' layers on the GPU' if self.gpu_layers else ''}, "
                f"this machine has {self.ram_bytes / GiB:.1f} GiB; choose a smaller or more strongly quantised "
                "file (e.g. Q4_K_M) or a shorter context")


def memory_fit(header: GGUFHeader, n_ctx: int | None = None, *, ram_bytes: int | None = None,
               vram_bytes: int | None = -1) -> MemoryFit:
    """``vram_bytes=-1`` detects the GPU; ``None`` means no GPU."""
    n_ctx = min(n_ctx or DEFAULT_CTX, header.context_length or n_ctx or DEFAULT_CTX)
    blocks = header.block_count or 0
    per_block: dict[int, int] = {}
    other = 0
    for t in header.tensors:
        size = t.nbytes or 0
        m = _BLOCK.match(t.name)
        if m:
            per_block[int(m.group(1))] = per_block.get(int(m.group(1)), 0) + size
        else:
            other += size
    weights = sum(per_block.values()) + other
    kv_layer = kv_bytes_per_layer(header, n_ctx)
    kv = kv_layer * blocks
    needed = weights + kv + COMPUTE_MARGIN
    if vram_bytes == -1:
        vram_bytes = detect_vram()
    n_layers = blocks + 1 if blocks else 0
    gpu_layers = 0
    if vram_bytes and blocks:
        budget = vram_bytes - GPU_RESERVE
        layer_cost = max(per_block.values(), default=0) + kv_layer
        # the output layer (output.weight, or the tied token embedding) goes last
        output_cost = other
        if layer_cost > 0 and budget > 0:
            gpu_layers = min(blocks, budget // layer_cost)
            if gpu_layers == blocks and budget - blocks * layer_cost >= output_cost:
                gpu_layers = n_layers
    return MemoryFit(weights_bytes=weights, kv_cache_bytes=kv, needed_bytes=needed, n_ctx=n_ctx, n_layers=n_layers,
                     ram_bytes=total_ram() if ram_bytes is None else ram_bytes, available_ram_bytes=available_ram(),
                     vram_bytes=vram_bytes, gpu_layers=int(gpu_layers))


def gpu_layers_that_fit(path: Path | str, n_ctx: int | None = None) -> int:
    """The layers of the GGUF at ``path`` that fit this machine's GPU: what a model is loaded with unless the user
    names a number (0 without a GPU, or when the header cannot be read: the load then says why)."""
    try:
        return memory_fit(read_gguf(path), n_ctx).gpu_layers
    except Exception:  # noqa: BLE001 - a bad file is refused with its reason when it loads, not here
        return 0
