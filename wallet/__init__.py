"""The wallet: keys, payments and the ``tangle-wallet`` command (docs/WALLET.md).

``keystore`` keeps the seed encrypted, ``keys`` derives addresses from it, ``state`` keeps
addresses, payments with their idempotency keys and the fleet in SQLite, ``payments``
pays from one address, ``ops`` joins them for the command in ``cli``; ``fleet``,
``uri`` and ``autotopup`` serve the fleet commands and payment requests.
"""

__all__: list[str] = []
