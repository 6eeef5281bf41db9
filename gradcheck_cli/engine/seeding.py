"""`torch.manual_seed`, at a fraction of its cost where no accelerator is built in.

`torch.manual_seed` also seeds every accelerator backend torch was built with, and queues
the seed for one not yet initialized, recording a formatted stack trace with each queued
seed (for its error message, should the seeding fail later): three traces per call, some
1.3 ms in a check's deep stack, more than many small checks cost. A CPU-only build of torch
can never initialize CUDA, XPU or MTIA, so those queued seeds would never be used: there,
seeding the CPU generator is the whole effect. Anywhere else (a backend built in, or a
custom device registered), torch's own function runs.
"""

from __future__ import annotations

import torch


def _accelerators_built() -> bool:
    c = torch._C
    custom = c._get_privateuse1_backend_name()
    return bool(getattr(c, "_has_cuda", True) or getattr(c, "_has_xpu", True)
                or getattr(c, "_has_mps", True)
                or (c._mtia_isBuilt() if hasattr(c, "_mtia_isBuilt") else True)
                or hasattr(torch, custom))


def manual_seed(seed: int) -> None:
    """Seed torch's global generators as `torch.manual_seed(seed)` does."""
    if _accelerators_built():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(int(seed))
