"""Annotations at the edge: what annotators export comes in here, what they should label goes out.

In (`readers`): Label Studio JSON, JSON-MIN and YOLO exports, CVAT "Ultralytics YOLO Detection"
and "COCO 1.0" exports (a file, a folder or a zip), their images found by `images`. `validate`
checks every box (inside its image, a label the taxonomy knows by name or alias, no rotation) and
reads every image; a problem names the file and the line or field (`records`). An image without
boxes is kept as a negative only when asked (`--negatives`): an empty label file is more often a
forgotten image than a clean street; a Label Studio annotation submitted empty is one. Results that
are no boxes (choices, text, keypoints, polygons) are counted by type, and an image with only such
results is skipped, never a negative.

Stored (`dataset`): a versioned dataset `datasets/<name>/manifest.json`, one entry per image keyed
by its sha256; `importer` adds an export to it as one new version.

Out (`writers`, `label_config`): Label Studio tasks with pre-annotations and a labelling config,
and an Ultralytics YOLO zip that CVAT imports. Percent, normalised and COCO coordinates exist only
in `coords`; everything else works in pixel xyxy.
"""

from __future__ import annotations
