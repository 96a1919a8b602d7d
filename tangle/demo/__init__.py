"""The demos: devices paying each other, on the core alone or on a devnet of real nodes.

This package sits on top of the node package and the wallet; the two command lines
(``tangle demo``, ``tangle-wallet demo`` / ``make demo``) call it, nothing below does.

- :mod:`tangle.demo.scenario`: the core alone, in one process (``tangle demo --in-process``);
- :mod:`tangle.demo.network`: devices with hand-built transactions on a devnet (``tangle demo``);
- :mod:`tangle.demo.machines`: the wallet's machine payments on a devnet (``make demo``).
"""

from tangle.node.errors import DevnetError as DemoError

__all__ = ["DemoError"]
