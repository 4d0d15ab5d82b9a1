"""The bottom layer: the taxonomy, the one detection type, safe photo decoding, drawing.

Imports nothing else of the project.
"""

from __future__ import annotations
