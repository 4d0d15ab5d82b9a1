"""Synthetic posted flyers (非法小广告) on real street photos, for training the `flyer` class.

No labelled photos of posted flyers exist here, so flyers are made in stages, one module each:
`text` (typical content and mobile numbers) in a CJK font (`fonts`), printed by `layout` (paper,
stickers, painted ads), worn by `wear` (torn, faded, wrinkled), placed by `placement` where
flyers really are on the `scene` (walls, poles and drainpipes, doors: see
vision/detect/surfaces.py for the rules; never on a labelled object), and pasted by
`compositing` with the background's `look` (lighting, blur and noise). Size comes from the
scene's scale (a door is about 2.1 m tall), so a flyer is a few pixels on a whole facade and a
large sheet in a close-up.

Every image is a pure function of (background, its labels, seed, index), so a set is reproducible
byte for byte. `synthesize.synthesize()` writes an ultralytics dataset (`streetorder data
synth-flyers`).
"""

from __future__ import annotations
