"""llama.cpp backend (llama-cpp-python): GGUF models, GPU offload, LoRA GGUF adapters, multimodal projectors.

- The chat template comes from the GGUF metadata (``tokenizer.chat_template``, rendered by llama-cpp-python's
  Jinja2ChatFormatter); a model without one falls back to llama-cpp-python's default and says so in ``info()``.
- GPU offload: ``n_gpu_layers`` is recorded together with what really happened (this build's
  ``llama_supports_gpu_offload()`` and the "offloaded N/M layers" line of llama.cpp's load log), so the UI shows
  "CPU" or "GPU n layers" and a GPU request that fell back to the CPU is a visible note, never silent.
- Multi-turn: the ``Llama`` object stays alive between calls; llama-cpp-python keeps the evaluated tokens and
  re-evaluates only what follows the longest common prefix, so a follow-up question whose prompt extends the previous
  one (same system prompt and history bytes) only pays for the new tokens. ``last_stats.reused_prompt_tokens``
  records how many prompt tokens were found in the cache.
- Cancel: a stopping criterion checks the cancel token after every sampled token, inside llama-cpp-python's loop,
  and the streaming loop stops iterating; at most one more token is computed after Stop.
- Multimodal (``mmproj_path``): a vision projector GGUF is handed to one of llama-cpp-python's chat handlers
  (``MTMDChatHandler`` by default, which uses the model's own template; ``Llava15ChatHandler``,
  ``Qwen25VLChatHandler``... by name). User messages carrying ``"images": [png_bytes]`` are sent as
  ``data:image/png;base64`` URIs, so the handler never fetches a URL. A model whose template only takes string
  content (a text model given a projector) gets its parts joined, each image as libmtmd's media marker. Tested with
  a projector built by the tests (tests/vision_support.py) on the embedded SmolLM2: images are encoded and placed
  in the context (``last_stats.prompt_tokens`` counts their positions); no real vision model has run here.
"""
from __future__ import annotations

import base64
import ctypes
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import llama_chat_format

from core.inference.backend import (
    BackendError,
    BackendInfo,
    GenerationParams,
    GenerationStats,
    Message,
    ModelLoadError,
    default_threads,
)
from core.inference.gguf_header import GGUFError, projector_problem, validate_gguf
from core.tasks import CancelToken

# Names accepted for ``chat_handler`` when a projector is given -> llama_chat_format class names.
MULTIMODAL_HANDLERS = {
    "mtmd": "MTMDChatHandler",
    "llava-1-5": "Llava15ChatHandler",
    "llava-1-6": "Llava16ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "llama-3-vision-alpha": "Llama3VisionAlphaChatHandler",
}

def _text_template_mtmd(base: type) -> type:
    """llama-cpp-python's MTMD handler for a model whose chat template only takes string content (a text model
    given a projector): the message's parts are joined into one string, each image as libmtmd's media marker."""

    class TextTemplateMTMDChatHandler(base):  # type: ignore[misc, valid-type]
        @classmethod
        def _convert_message_for_template(cls, message: Any, media_marker: str) -> dict[str, Any]:
            out = dict(message)
            content = out.get("content")
            if isinstance(content, list):
                out["content"] = "\n".join(
                    media_marker if isinstance(p, dict) and p.get("type") == "image_url"
                    else (p.get("text", "") if isinstance(p, dict) else str(p)) for p in content)
            return out

    return TextTemplateMTMDChatHandler


_OFFLOAD_RE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_LOAD_LOCK = threading.Lock()  # llama.cpp's log callback is process-wide: one load captures it at a time
_log_lines: list[str] = []
_log_echo = False


@llama_cpp.llama_log_callback
def _capture_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", errors="replace")
    if "offload" in line:
        _log_lines.append(line)
    if _log_echo:
        print(line, end="", file=sys.stderr)


def image_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def to_llama_messages(messages: list[Message], multimodal: bool) -> list[dict[str, Any]]:
    """Our messages -> llama-cpp-python's; PNG key images become data-URI ``image_url`` parts."""
    out = []
    for m in messages:
        images = m.get("images") or []
        if images and not multimodal:
            raise BackendError("this model has no vision projector (mmproj): it cannot receive key images")
        if images:
            parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image_data_uri(p)}} for p in images]
            parts.append({"type": "text", "text": m["content"]})
            out.append({"role": m["role"], "content": parts})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


class _CancellableFormatter:
    """The GGUF's Jinja template, plus a stopping criterion that counts tokens and honours the cancel token."""

    def __init__(self, inner: llama_chat_format.Jinja2ChatFormatter) -> None:
        self.inner = inner
        self.token: CancelToken | None = None
        self.sampled = 0

    def __call__(self, **kwargs: Any) -> llama_chat_format.ChatFormatterResponse:
        response = self.inner(**kwargs)
        criteria = list(response.stopping_criteria or [])
        criteria.append(self._should_stop)
        response.stopping_criteria = llama_cpp.StoppingCriteriaList(criteria)
        return response

    def _should_stop(self, input_ids: Any, logits: Any) -> bool:
        self.sampled += 1
        return self.token is not None and self.token.cancelled


class LlamaCppBackend:
    name = "llama-cpp"

    def __init__(
        self,
        model_path: Path | str,
        *,
        n_gpu_layers: int = 0,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        lora_path: Path | str | None = None,
        lora_scale: float = 1.0,
        mmproj_path: Path | str | None = None,
        chat_handler: str | None = None,
        require_gpu: bool = False,
        verbose: bool = False,
        probe_projector: bool = True,
    ) -> None:
        self.model_path = Path(model_path)
        self.n_gpu_layers = n_gpu_layers
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_batch = n_batch
        self.lora_path = Path(lora_path) if lora_path else None
        self.lora_scale = lora_scale
        self.mmproj_path = Path(mmproj_path) if mmproj_path else None
        self.chat_handler_name = chat_handler
        self.require_gpu = require_gpu
        self.verbose = verbose
        self.probe_projector = probe_projector  # test-load the projector in a child first (projector_probe)
        self.last_stats: GenerationStats | None = None
        self._llm: llama_cpp.Llama | None = None
        self._formatter: _CancellableFormatter | None = None
        self._info = BackendInfo(
            backend=self.name, model_path=str(self.model_path), n_threads=self.n_threads,
            gpu_layers_requested=n_gpu_layers, lora_path=str(self.lora_path) if self.lora_path else None,
            mmproj_path=str(self.mmproj_path) if self.mmproj_path else None, multimodal=self.mmproj_path is not None,
        )
        self._run_lock = threading.Lock()
        self._current: CancelToken | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------
    @property
    def is_loaded(self) -> bool:
        return self._llm is not None

    def load(self) -> BackendInfo:
        if self._llm is not None:
            return self._info
        try:
            header = validate_gguf(self.model_path, expect_kind="model")
            if self.lora_path:
                validate_gguf(self.lora_path, expect_kind="adapter")
            if self.mmproj_path:
                problem = projector_problem(header, validate_gguf(self.mmproj_path, expect_kind="mmproj"))
                if problem:  # libmtmd would only fail at the first image, with a vaguer message
                    raise ModelLoadError(problem)
        except GGUFError as exc:
            raise ModelLoadError(str(exc)) from exc
        if self.mmproj_path and self.probe_projector:
            from core.inference.projector_probe import probe_projector

            problem = probe_projector(self.model_path, self.mmproj_path, chat_handler=self.chat_handler_name)
            if problem:  # a projector libmtmd crashes on would take this process (and unsaved work) with it
                raise ModelLoadError(problem)
        supported = bool(llama_cpp.llama_supports_gpu_offload())
        if self.n_gpu_layers and not supported and self.require_gpu:
            raise ModelLoadError(
                f"{self.model_path.name}: GPU offload of {self.n_gpu_layers} layers was required but this "
                "llama-cpp-python build has no GPU support (rebuild it with CMAKE_ARGS=-DGGML_CUDA=on)"
            )
        trained = header.context_length or self.n_ctx or 2048
        n_ctx = min(self.n_ctx, trained) if self.n_ctx else trained
        handler = self._make_multimodal_handler(header.chat_template) if self.mmproj_path else None
        global _log_echo
        with _LOAD_LOCK:
            _log_lines.clear()
            _log_echo = self.verbose
            llama_cpp.llama_log_set(_capture_log, ctypes.c_void_p(0))
            try:
                llm = llama_cpp.Llama(
                    str(self.model_path), n_gpu_layers=self.n_gpu_layers, n_ctx=n_ctx, n_batch=self.n_batch,
                    n_threads=self.n_threads, n_threads_batch=self.n_threads,
                    lora_path=str(self.lora_path) if self.lora_path else None, lora_scale=self.lora_scale,
                    chat_handler=handler, verbose=self.verbose,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelLoadError(f"{self.model_path}: llama.cpp could not load the model: {exc}") from exc
            finally:
                from llama_cpp import _logger

                llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
            offload_log = "".join(_log_lines)
        init_projector = getattr(handler, "_init_mtmd_context", None)
        if init_projector is not None:
            # llama-cpp-python loads the projector at the first image; loading it now makes a projector libmtmd
            # cannot use fail here, naming the files, instead of failing the first question with images
            try:
                init_projector(llm)
            except (ValueError, RuntimeError) as exc:
                llm.close()
                raise ModelLoadError(f"{self.mmproj_path}: libmtmd could not load this projector for "
                                     f"{self.model_path.name} ({exc})") from exc
        self._llm = llm
        self._info = self._describe(header, llm, supported, offload_log)
        if handler is None:
            self._install_template(header.chat_template)
        return self._info

    def _make_multimodal_handler(self, template: str | None) -> Any:
        name = self.chat_handler_name or ("mtmd" if template else "llava-1-5")
        cls_name = MULTIMODAL_HANDLERS.get(name)
        cls = getattr(llama_chat_format, cls_name, None) if cls_name else None
        if name == "mtmd" and cls is not None and "image" not in (template or ""):
            cls = _text_template_mtmd(cls)  # a template written for text only cannot take content parts
        if cls is None:
            raise ModelLoadError(
                f"unknown multimodal chat handler {name!r} (known: {', '.join(MULTIMODAL_HANDLERS)})"
            )
        return cls(clip_model_path=str(self.mmproj_path), verbose=self.verbose)

    def _describe(self, header: Any, llm: llama_cpp.Llama, supported: bool, log: str) -> BackendInfo:
        n_layers = header.block_count
        match = _OFFLOAD_RE.search(log)
        if not supported:
            offloaded = 0
        elif match:
            offloaded = int(match.group(1))
        else:
            want = n_layers + 1 if self.n_gpu_layers < 0 and n_layers else self.n_gpu_layers
            offloaded = min(want, (n_layers or want) + 1)
        info = BackendInfo(
            backend=self.name, model_path=str(self.model_path),
            model_name=str(header.get("general.name") or self.model_path.stem),
            architecture=header.architecture, n_ctx=llm.n_ctx(), n_threads=self.n_threads,
            device="GPU" if offloaded else "CPU", gpu_offload_supported=supported,
            gpu_layers_requested=self.n_gpu_layers, gpu_layers_offloaded=offloaded, n_layers=n_layers,
            lora_path=str(self.lora_path) if self.lora_path else None,
            mmproj_path=str(self.mmproj_path) if self.mmproj_path else None,
            multimodal=self.mmproj_path is not None,
        )
        if self.n_gpu_layers and not supported:
            info.notes.append(
                f"GPU offload of {self.n_gpu_layers} layers was requested, but this llama-cpp-python build has no "
                "GPU support: the model runs on the CPU."
            )
        elif self.n_gpu_layers and offloaded < min(abs(self.n_gpu_layers), (n_layers or 0) + 1):
            info.notes.append(f"only {offloaded} of the requested {self.n_gpu_layers} layers are on the GPU.")
        return info

    def _install_template(self, template: str | None) -> None:
        llm = self._llm
        assert llm is not None
        if template is None:
            self._formatter = None
            self._info.chat_template = f"fallback: {llm.chat_format}"
            self._info.notes.append(
                f"{self.model_path.name} has no chat template; llama-cpp-python's '{llm.chat_format}' format is used."
            )
            return
        eos = llm.token_eos()
        bos = llm.token_bos()
        inner = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(eos),
            bos_token=self._token_text(bos),
            stop_token_ids=[eos],
        )
        self._formatter = _CancellableFormatter(inner)
        llm.chat_handler = llama_chat_format.chat_formatter_to_chat_completion_handler(self._formatter)
        self._info.chat_template = "gguf"

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def unload(self) -> None:
        self.cancel()
        with self._run_lock:
            if self._llm is not None:
                self._llm.close()
            self._llm = None
            self._formatter = None

    def info(self) -> BackendInfo:
        return self._info

    def reset_cache(self) -> None:
        """Forget the evaluated tokens: the next prompt is evaluated from scratch (benchmarks measure a cold turn)."""
        with self._run_lock:
            self._require().reset()

    def _require(self) -> llama_cpp.Llama:
        if self._llm is None:
            raise BackendError(f"{self.model_path.name} is not loaded (call load() first)")
        return self._llm

    # --- prompts and tokens ---------------------------------------------------------------------------------
    def render_prompt(self, messages: list[Message]) -> str:
        """The exact text the chat template makes of ``messages``, ending with the assistant generation prompt."""
        self._require()
        if self._formatter is None:
            raise BackendError("this model is formatted by a built-in or multimodal handler: no text prompt to show")
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._formatter.inner(messages=plain).prompt

    def tokenize_prompt(self, messages: list[Message]) -> list[int]:
        return self._require().tokenize(self.render_prompt(messages).encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._require().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, messages: list[Message]) -> int:
        if self._formatter is not None:
            return len(self.tokenize_prompt(messages))
        # Built-in/multimodal formats: the text tokens plus a small per-message allowance for role markers
        # (image embeddings are not counted).
        return sum(self.count_tokens(m["content"]) + 8 for m in messages) + 8

    # --- generation -----------------------------------------------------------------------------------------
    def cancel(self) -> None:
        token = self._current
        if token is not None:
            token.cancel()

    def chat_stream(
        self, messages: list[Message], params: GenerationParams | None = None, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        params = params or GenerationParams()
        token = cancel or CancelToken()
        with self._run_lock:
            llm = self._require()
            self._current = token
            stats = GenerationStats()
            self.last_stats = stats
            start = time.perf_counter()
            if self._formatter is not None:
                prompt = self.tokenize_prompt(messages)
                stats.prompt_tokens = len(prompt)
                stats.reused_prompt_tokens = cached_prefix_length(llm, prompt)
                self._formatter.token = token
                self._formatter.sampled = 0
            stream = llm.create_chat_completion(
                to_llama_messages(messages, self._info.multimodal), stream=True, max_tokens=params.max_tokens,
                temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                repeat_penalty=params.repeat_penalty, seed=params.seed, stop=list(params.stop),
                response_format=({"type": "json_object", "schema": params.json_schema}
                                 if params.json_schema is not None else None),
            )
            pieces = 0
            try:
                for chunk in stream:
                    if token.cancelled:
                        break
                    choice = chunk["choices"][0]
                    piece = choice["delta"].get("content")
                    if piece:
                        if stats.ttft_s is None:
                            stats.ttft_s = time.perf_counter() - start
                        pieces += 1
                        yield piece
                    if choice.get("finish_reason"):
                        stats.finish_reason = choice["finish_reason"]
            finally:
                stream.close()
                stats.total_s = time.perf_counter() - start
                stats.generated_tokens = self._formatter.sampled if self._formatter is not None else pieces
                if self._formatter is None and self._info.multimodal:  # text and image positions in the context
                    stats.prompt_tokens = max(0, int(llm.n_tokens) - stats.generated_tokens)
                if token.cancelled:
                    stats.finish_reason = "cancelled"
                self._current = None
                if self._formatter is not None:
                    self._formatter.token = None


def cached_prefix_length(llm: llama_cpp.Llama, tokens: list[int]) -> int:
    """Length of the prefix of ``tokens`` already evaluated in ``llm``'s KV cache."""
    cached = llm.input_ids[: llm.n_tokens].tolist()
    n = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        n += 1
    return n
