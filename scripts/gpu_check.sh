#!/usr/bin/env bash
# One GPU check for SpineMed Workstation on a machine with an NVIDIA GPU:
#   1. builds llama-cpp-python (the pinned version) with CUDA into a separate venv (default build/gpu-venv), next to
#      the project's own dependencies and the train extra (PyPI's default Linux torch wheel, which is a CUDA build);
#   2. runs benchmarks/bench_inference.py with every layer offloaded (--gpu-layers -1): decode tokens/s and time to
#      first token;
#   3. runs one LoRA training step on CUDA through spinemed-train's own code path (training.train.run_training);
#   4. prints one line per figure ("gpu-check: <figure>: <value>").
# Without an NVIDIA GPU (no nvidia-smi, or it lists no GPU) it prints "no GPU" and exits 0, having changed nothing.
# Needs network for step 1 (pip); the model is the embedded one (scripts/setup.sh fetches it) unless MODEL=... is set.
# Usage: scripts/gpu_check.sh            GPU_VENV=/path/to/venv  MODEL=/path/to/model.gguf  REPEATS=5
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

gpus=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true)
fi
if [ -z "$gpus" ]; then
  echo "gpu-check: no GPU (no NVIDIA GPU visible to nvidia-smi); nothing to check"
  exit 0
fi
echo "gpu-check: GPU: $(echo "$gpus" | head -1)"

VENV=${GPU_VENV:-$ROOT/build/gpu-venv}
PY=${PYTHON:-python3}
LLAMA_VERSION=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' pyproject.toml)
TORCH_VERSION=$(sed -n 's/.*"torch==\([^"]*\)".*/\1/p' pyproject.toml)
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade "pip>=24" >/dev/null
if ! "$VPY" -c "import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())" 2>/dev/null; then
  echo "gpu-check: building llama-cpp-python $LLAMA_VERSION with CUDA into $VENV (several minutes)" >&2
  CMAKE_ARGS="-DGGML_CUDA=on" FORCE_CMAKE=1 "$VPY" -m pip install -q --no-cache-dir --force-reinstall --no-deps \
    "llama-cpp-python==$LLAMA_VERSION"
fi
# torch from PyPI's default index: on Linux x86_64 that wheel is built with CUDA (the project venv pins a CPU one).
"$VPY" -m pip install -q "torch==$TORCH_VERSION"
"$VPY" -m pip install -q -e ".[train]"
"$VPY" -c "import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())" \
  || { echo "gpu-check: FAILED: llama-cpp-python in $VENV was built without GPU offload" >&2; exit 1; }
"$VPY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
  || { echo "gpu-check: FAILED: torch in $VENV sees no CUDA device" >&2; exit 1; }
"$VPY" -m core.inference.fetch_default_model --models-dir "$ROOT/models" >/dev/null
MODEL=${MODEL:-$("$VPY" -c "from core.inference.default_model import find_default_model; print(find_default_model())")}

OUT=$(mktemp -d "${TMPDIR:-/tmp}/spinemed-gpu-check.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

# 2. inference, every layer on the GPU
"$VPY" benchmarks/bench_inference.py --model "$MODEL" --gpu-layers -1 --repeats "${REPEATS:-5}" --threads 4 \
  --json "$OUT/inference.json" > "$OUT/inference.log" 2>&1 \
  || { echo "gpu-check: FAILED: inference benchmark (log below)" >&2; cat "$OUT/inference.log" >&2; exit 1; }

# 3. one LoRA step on CUDA, the training code path of `spinemed-train train`, embedded base, shipped config
"$VPY" - "$OUT" <<'PY' > "$OUT/train.log" 2>&1 || { echo "gpu-check: FAILED: LoRA step (log below)" >&2; cat "$OUT/train.log" >&2; exit 1; }
import json, sys, time
from pathlib import Path
from training.config import load_config
from training.train import run_training

out = Path(sys.argv[1])
cfg = load_config("resources/training/smollm2-spinemed-lora.yaml", overrides=[
    "device=cuda", "stages=[]", "optim.max_steps=1", "eval.spinebench_command=null", "export.gguf=false",
    "export.register_dir=null", f"output_dir={out / 'lora'}"])
start = time.perf_counter()
result = run_training(cfg)
stage = result.stages[0]
(out / "train.json").write_text(json.dumps({
    "device": result.device, "steps": stage.steps, "train_loss": stage.train_loss,
    "tokens_per_second": stage.tokens_per_second, "seconds": time.perf_counter() - start,
    "peak_memory_mib": result.peak_memory_mib}))
PY

"$VPY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
inf = json.loads((out / "inference.json").read_text())
tr = json.loads((out / "train.json").read_text())
print(f"gpu-check: layers offloaded: {inf['gpu_layers_offloaded']}")
print(f"gpu-check: decode tokens/s (LlamaCppBackend): {inf['ours']:.1f}")
print(f"gpu-check: decode tokens/s (raw llama_cpp.Llama): {inf['raw']:.1f}")
print(f"gpu-check: decode ratio ours/raw: {inf['ratio']:.3f}")
print(f"gpu-check: time to first token, turn 1: {inf['ttft_turn1'] * 1000:.0f} ms")
print(f"gpu-check: time to first token, turn 2 (cache reused): {inf['ttft_turn2'] * 1000:.0f} ms")
print(f"gpu-check: LoRA step on {tr['device']}: {tr['steps']} step(s), loss {tr['train_loss']}, "
      f"{tr['tokens_per_second']} tokens/s, {tr['seconds']:.1f} s with model load")
print(f"gpu-check: LoRA peak memory: {tr['peak_memory_mib']:.0f} MiB")
PY
