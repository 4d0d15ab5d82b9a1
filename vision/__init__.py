"""streetorder's vision layer: detection runtime, live rules, data and model operations.

A .pt checkpoint is a pickle, and ultralytics unpickles it with `weights_only=False` unless told
otherwise: a hostile file runs its code when loaded. Every model in this process is loaded through
ultralytics after this package is imported, so its restricted loading (`weights_only=True` against
its allow-list of model classes) is switched on here, once, before ultralytics reads the flag;
`ULTRALYTICS_SAFE_LOAD=0` in the environment turns it off for a checkpoint it refuses.
"""

from __future__ import annotations

import os

os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")
