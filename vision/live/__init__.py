"""Live cameras: camera configs, streams, zones, tracking, dwell clocks, occupancy and the rules
that turn what stays into incidents.

Imports only vision.core (and vision.detect for detectors).
"""

from __future__ import annotations
