"""The evaluation's optional packages: imported on first use, with an error that says how to install them."""

import importlib
import warnings
from types import ModuleType

EXTRA = "pip install 'lrnn[audio-eval]'"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming ``purpose`` and the ``audio-eval`` extra."""
    try:
        with warnings.catch_warnings():  # Resemblyzer imports scipy.ndimage.morphology, webrtcvad pkg_resources
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs the {module!r} package, which is not installed: {EXTRA}") from error
