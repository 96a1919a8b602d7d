"""The wallet: keys, payments and the ``tangle-wallet`` command.

So far it checks addresses; the keystore, payments and fleet top-ups build on the
core's ``tangle.builder`` and arrive with the wallet work.
"""

__all__: list[str] = []
