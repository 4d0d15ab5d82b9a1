"""`python -m serve.cli MODE ...`, for hosts without the installed `streetorder` script."""

from __future__ import annotations

import sys

from serve.cli.main import main

sys.exit(main())
