"""The wallet: keys, payments and the ``tangle-wallet`` command (docs/WALLET.md).

``keystore`` keeps the seed encrypted, ``keys`` derives addresses from it, ``state`` keeps
addresses, payments with their idempotency keys and the fleet in SQLite, ``client``
talks to one node (in :mod:`tangle.schema`'s shapes), ``payments`` pays from one
address, ``ops`` joins them for the command in the ``cli`` package; ``fleet``, ``uri``
and ``autotopup`` serve the fleet commands and payment requests; ``audit``, ``meter``
and the ``x402`` package are the machine payments (per kWh, per request, per byte).
Every error is in ``errors``, under :class:`tangle.errors.TangleError`.

The wallet uses the pure core (``tangle.*`` outside ``tangle.node`` and ``tangle.demo``),
``tangle.schema`` and ``pow``; only ``cli.demo`` reaches for :mod:`tangle.demo`.
"""

__all__: list[str] = []
