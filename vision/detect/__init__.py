"""Detection: model files and cards, runtime backends (ONNX Runtime, OpenVINO, ultralytics),
the photo pipeline, privacy redaction and text reading.

Imports only vision.core.
"""
