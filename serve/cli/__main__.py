"""`python -m serve.cli MODE ...`, for hosts without the installed `streetorder` script."""

import sys

from serve.cli.main import main

sys.exit(main())
