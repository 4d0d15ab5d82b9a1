"""The error of a model that cannot be found or used. Apart from the model registry, which validates
cards with pydantic: the GPU relay's leg raises it on a host without pydantic (vision/modelops/train.py)."""

from __future__ import annotations


class ModelError(ValueError):
    """A model that cannot be found or used; the message names the file or folder and why."""
