"""``python -m wallet.cli`` runs the ``tangle-wallet`` command."""

import sys

from wallet.cli import main

sys.exit(main())
