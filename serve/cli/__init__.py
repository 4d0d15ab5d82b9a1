"""The one command line, `streetorder MODE ...`: argument parsing lives here and only here."""

from __future__ import annotations
