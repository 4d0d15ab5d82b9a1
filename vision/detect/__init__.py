"""Detection: model files and cards, runtime backends (ONNX Runtime, OpenVINO, ultralytics),
the photo pipeline, privacy redaction and text reading.

Imports only vision.core.
"""

from __future__ import annotations
