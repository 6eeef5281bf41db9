"""gradcheck-cli: check the hand-written backward of custom autograd Functions.

This module only holds the version: importing it must never import torch.
"""

__version__ = "0.1.0"
