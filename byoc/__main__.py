"""``python -m byoc`` runs the command line."""

import sys

from byoc.cli import main

sys.exit(main())
