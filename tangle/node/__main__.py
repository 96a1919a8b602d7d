"""``python -m tangle.node`` runs the ``tangle`` command."""

import sys

from tangle.node.cli import main

sys.exit(main())
