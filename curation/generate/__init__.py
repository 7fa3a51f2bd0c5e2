"""Item generation: schemas (``schemas``), prompt templates (``prompts``), generators (``templates`` - LLM-free from
knowledge passages; ``grounded`` - from labels, with key images rendered by ``render``; ``llm`` - local GGUF or
OpenAI-compatible endpoint), the revise stage (``revise``) and the resumable two-stage ``pipeline``."""
