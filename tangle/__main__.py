"""``python -m tangle`` runs the ``tangle`` command."""

import sys

from tangle.cli import main

sys.exit(main())
