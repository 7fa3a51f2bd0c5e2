"""SpineMed model training: LoRA fine-tuning on the curated chat data, export for the workstation.

No Qt or VTK here. torch, transformers, peft, datasets and accelerate come with the ``train`` extra and are imported by
the modules that need them (config and card work without). Training never downloads anything: bases are local files.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
