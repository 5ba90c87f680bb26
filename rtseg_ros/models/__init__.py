"""The network zoo: ``build_model(name)``, ``available_models()``, ``get_entry(name)``.

One file per network family; importing it registers its names.
"""
from .registry import ModelEntry, PaperFigures, available_models, build_model, get_entry  # noqa: F401
from . import farsee, sgcpnet, csfcn, ddrnet  # noqa: E402,F401  (registration side effects)

__all__ = ["ModelEntry", "PaperFigures", "available_models", "build_model", "get_entry"]
