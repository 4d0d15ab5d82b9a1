"""The HTTP service (FastAPI): app, dependencies, schemas, one router per resource.

Imports serve.cases and vision; never serve.cli.
"""

from __future__ import annotations
