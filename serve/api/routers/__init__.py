"""One router per resource of the service API."""

from __future__ import annotations
