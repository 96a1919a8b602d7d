"""The peer node: configuration, the asyncio node, its HTTP API (layer 5, I/O)."""
