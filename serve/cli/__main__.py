"""`python -m serve.cli.main MODE ...`, for hosts without the installed `streetorder` script."""

import sys

from serve.cli.main.main import main

sys.exit(main())
