"""Import torch without noise: the filters every process of ours sets before `import torch`."""

import warnings


def quiet_torch_import() -> None:
    """torch warns at import when numpy is missing; numpy is not needed to check gradients."""
    warnings.filterwarnings("ignore", message=r".*Failed to initialize NumPy.*")
    warnings.filterwarnings("ignore", message=r".*NumPy.*", module=r"torch.*")
