"""``python -m tangle`` runs the ``tangle`` command, which lives in the node package
(:mod:`tangle.node.cli`; ``python -m tangle.node`` is the same). Not part of the core:
nothing imports this module."""

import sys

from tangle.node.cli import main

sys.exit(main())
