"""Local model runtime: backends, model registry, the embedded default model. No Qt.

- ``backend``: the ChatBackend interface, GenerationParams/BackendInfo/GenerationStats, the registry of runtimes
  (``create_backend``, ``backend_for_model``). Importing it loads neither llama.cpp nor torch.
- ``llama_backend``: GGUF models through llama-cpp-python (GPU offload reporting, LoRA, mmproj, KV-cache reuse).
- ``transformers_backend``: HF folders (+ PEFT adapter) through transformers; needs the ``train`` extra.
- ``gguf_header``: GGUF header reader and completeness check; ``registry``: local models, metadata, selection.
- ``default_model`` / ``fetch_default_model``: the embedded SmolLM2-135M-Instruct GGUF.
- ``openai_http``: JSON client for a user-named OpenAI-compatible endpoint (only that URL, no redirects followed).
"""
