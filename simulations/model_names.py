"""The names of the experiments' models (shallow, deep and LinNet, each optionally with KFO), without torch.

The configs that name models (``explore --models``) check the names here, so that a config can be built, and its
theory evaluated, in a process that never imports torch (the explorer app, ``explore --theory-only``);
simulations.model_zoo builds the models.
"""
from __future__ import annotations

from theory.ground.errors import ParameterError

MODEL_NAMES = ("shallow", "deep", "linnet", "kfo", "deep-kfo", "linnet-kfo", "deep-linnet")


def parse_models(text: str) -> tuple[str, ...]:
    """'shallow,deep-kfo' -> ('shallow', 'deep-kfo'); unknown names raise ParameterError('models')."""
    names = tuple(part.strip() for part in str(text).split(",") if part.strip())
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        raise ParameterError("models", text, f"a comma-separated list of distinct names from {','.join(MODEL_NAMES)}")
    return names
