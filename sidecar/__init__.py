"""TripoSR sidecar: the inference service behind the TripoSR for Blender add-on."""

import os
import sys

__version__ = "0.1.0"

# PyTorch reads this once, when torch is first imported: it must be set before any of our modules
# import torch, or ops that Apple's MPS backend lacks raise instead of running on the CPU.
if sys.platform == "darwin":
    os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
