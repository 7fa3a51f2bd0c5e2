"""transformers backend: a local Hugging Face model folder plus an optional PEFT (LoRA) adapter folder.

torch, transformers and peft belong to the ``train`` extra and are imported only by :meth:`load`, so the rest of the
application runs without them. Everything is read with ``local_files_only=True`` (never a hub download) and
``trust_remote_code=False``. Generation runs ``model.generate`` in a thread feeding a ``TextIteratorStreamer``; a
stopping criterion checks the cancel token after every token. Unlike the llama.cpp backend, no KV cache is kept
between calls: every turn evaluates the whole prompt.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.inference.backend import (
    BackendError,
    BackendInfo,
    GenerationParams,
    GenerationStats,
    Message,
    ModelLoadError,
    default_threads,
)
from core.tasks import CancelToken


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        adapter_dir: Path | str | None = None,
        n_threads: int | None = None,
        device: str = "auto",  # "auto" (CUDA when available), "cpu" or "cuda"
        n_ctx: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        self.n_threads = n_threads or default_threads()
        self.device_request = device
        self.n_ctx = n_ctx
        self.last_stats: GenerationStats | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"
        self._current: CancelToken | None = None
        self._run_lock = threading.Lock()
        self._info = BackendInfo(backend=self.name, model_path=str(self.model_dir), n_threads=self.n_threads,
                                 lora_path=str(self.adapter_dir) if self.adapter_dir else None)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def load(self) -> BackendInfo:
        if self._model is not None:
            return self._info
        if not (self.model_dir / "config.json").is_file():
            raise ModelLoadError(f"{self.model_dir}: not a Hugging Face model folder (no config.json)")
        if self.adapter_dir and not (self.adapter_dir / "adapter_config.json").is_file():
            raise ModelLoadError(f"{self.adapter_dir}: not a PEFT adapter folder (no adapter_config.json)")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ModelLoadError(
                f"{self.model_dir}: the transformers backend needs the 'train' extra (torch, transformers, peft): {exc}"
            ) from exc
        torch.set_num_threads(self.n_threads)
        want_cuda = self.device_request == "cuda" or (self.device_request == "auto" and torch.cuda.is_available())
        if self.device_request == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"{self.model_dir}: CUDA was requested but torch sees no GPU")
        self._device = "cuda" if want_cuda else "cpu"
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                self.model_dir, local_files_only=True, trust_remote_code=False,
                dtype="auto",
            )
            if self.adapter_dir:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.adapter_dir, local_files_only=True)
        except (OSError, ValueError, ImportError) as exc:
            raise ModelLoadError(f"{self.model_dir}: transformers could not load the model: {exc}") from exc
        model.to(self._device)
        model.eval()
        self._model, self._tokenizer = model, tokenizer
        config = model.config
        n_layers = getattr(config, "num_hidden_layers", None)
        n_ctx = self.n_ctx or getattr(config, "max_position_embeddings", None) or 2048
        self._info = BackendInfo(
            backend=self.name, model_path=str(self.model_dir), model_name=self.model_dir.name,
            architecture=(getattr(config, "architectures", None) or [config.model_type])[0], n_ctx=int(n_ctx),
            n_threads=self.n_threads, device="GPU" if want_cuda else "CPU", gpu_offload_supported=torch.cuda.is_available(),
            gpu_layers_requested=(n_layers or 0) if want_cuda else 0,
            gpu_layers_offloaded=(n_layers or 0) if want_cuda else 0,
            n_layers=n_layers, lora_path=str(self.adapter_dir) if self.adapter_dir else None,
            chat_template="hf" if getattr(tokenizer, "chat_template", None) else "none",
        )
        if not getattr(tokenizer, "chat_template", None):
            raise ModelLoadError(f"{self.model_dir}: the tokenizer has no chat template")
        return self._info

    def unload(self) -> None:
        self.cancel()
        with self._run_lock:
            self._model = self._tokenizer = None

    def info(self) -> BackendInfo:
        return self._info

    def _require(self) -> tuple[Any, Any]:
        if self._model is None:
            raise BackendError(f"{self.model_dir.name} is not loaded (call load() first)")
        return self._model, self._tokenizer

    def render_prompt(self, messages: list[Message]) -> str:
        _, tok = self._require()
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        return tok.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)

    def count_tokens(self, text: str) -> int:
        _, tok = self._require()
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def count_prompt_tokens(self, messages: list[Message]) -> int:
        _, tok = self._require()
        return len(tok(self.render_prompt(messages), add_special_tokens=False)["input_ids"])

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()

    def chat_stream(
        self, messages: list[Message], params: GenerationParams | None = None, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        params = params or GenerationParams()
        token = cancel or CancelToken()
        if any(m.get("images") for m in messages):
            raise BackendError("the transformers backend takes text only: key images need a GGUF model with mmproj")
        with self._run_lock:
            model, tok = self._require()
            self._current = token
            stats = GenerationStats()
            self.last_stats = stats
            start = time.perf_counter()
            ids = tok(self.render_prompt(messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
            ids = ids.to(self._device)
            stats.prompt_tokens = int(ids.shape[-1])
            sampled = [0]

            class _Stop(StoppingCriteria):
                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                    sampled[0] += 1
                    return torch.full((input_ids.shape[0],), token.cancelled, dtype=torch.bool,
                                      device=input_ids.device)

            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
            kwargs: dict[str, Any] = {
                "input_ids": ids, "attention_mask": torch.ones_like(ids), "max_new_tokens": params.max_tokens,
                "streamer": streamer, "stopping_criteria": StoppingCriteriaList([_Stop()]),
                "repetition_penalty": params.repeat_penalty, "pad_token_id": tok.pad_token_id or tok.eos_token_id,
            }
            if params.temperature > 0:
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
            else:
                kwargs.update(do_sample=False)
            if params.seed is not None:
                torch.manual_seed(params.seed)
            error: list[BaseException] = []

            def run() -> None:
                try:
                    with torch.inference_mode():
                        model.generate(**kwargs)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the consuming thread
                    error.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="transformers-generate", daemon=True)
            worker.start()
            exhausted = False
            try:
                for piece in streamer:
                    if token.cancelled:
                        break
                    if piece:
                        if stats.ttft_s is None:
                            stats.ttft_s = time.perf_counter() - start
                        yield piece
                else:
                    exhausted = True
            finally:
                token_was_cancelled = token.cancelled
                if not exhausted:
                    token.cancel()  # stopped early (Stop, or the consumer closed us): stop generate() too
                    for _ in streamer:  # drain to the end signal so generate() can return
                        pass
                worker.join()
                stats.total_s = time.perf_counter() - start
                stats.generated_tokens = sampled[0]
                stats.finish_reason = "cancelled" if token_was_cancelled else (
                    "length" if sampled[0] >= params.max_tokens else "stop")
                self._current = None
            if error:
                raise BackendError(f"{self.model_dir.name}: generation failed: {error[0]}") from error[0]
