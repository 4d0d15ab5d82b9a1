"""Model operations: train, evaluate, export, promote, retrain, the GPU relay.

Imports the layers below; never serve.
"""

from __future__ import annotations
