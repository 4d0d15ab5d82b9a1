"""The case domain: the database, findings into cases, workflow, deadlines, grids, routing,
statistics, scans of photo archives, cameras into cases, API keys.

Imports vision; never serve.api or serve.cli.
"""

from __future__ import annotations
