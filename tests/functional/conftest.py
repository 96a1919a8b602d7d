"""Fixtures: node processes that always stop, with their logs shown on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.functional.framework import NodeProcess

pytestmark = pytest.mark.functional


@pytest.fixture
def spawn(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def make(name: str = "node0", *extra: str, dev: bool = True) -> NodeProcess:
        node = NodeProcess(tmp_path / name, *extra, dev=dev).start()
        started.append(node)
        return node

    yield make
    failed = getattr(request.node, "rep_call", None)
    for node in started:
        node.kill()
        if failed is not None and failed.failed:
            print(f"\n--- log of {node.data_dir.name} ---\n{node.tail()}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for a whole hypothesis run (function-scoped fixtures do not mix with @given)."""
    node = NodeProcess(tmp_path_factory.mktemp("fuzz")).start()
    yield node
    node.kill()
