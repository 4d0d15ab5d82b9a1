"""Training data: dataset mixes, synthetic flyers, annotation import/export, the labelling queue.

Imports vision.core and vision.detect.
"""

from __future__ import annotations
