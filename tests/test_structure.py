"""The shape we keep: layering, the public API, and citations of PROTOCOL.md."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import tangle

ROOT = Path(__file__).parent.parent
CONTRACTS = {
    c["id"]: c
    for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}
"""The import-linter contracts (`make lint` runs them); these tests only check what
import-linter cannot: that the pure core's list is complete, prints and randomness."""
NOT_CORE = {"node", "demo"}


def core_modules() -> list[str]:
    """The modules of the core layers of the ``layers`` contract."""
    names = []
    for layer in CONTRACTS["layers"]["layers"]:
        names += [m.strip() for m in re.split(r"[|:]", layer) if m.strip() not in NOT_CORE]
    return sorted(names)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_pure_core_contract_covers_every_core_module() -> None:
    """Every module directly in tangle/ is a core layer, and the pure-core contract
    (no I/O, no clock, no environment) holds all of them."""
    on_disk = sorted(
        p.stem for p in (ROOT / "tangle").glob("*.py") if p.stem not in ("__init__", "__main__")
    )
    assert core_modules() == on_disk
    assert sorted(CONTRACTS["pure-core"]["source_modules"]) == [f"tangle.{m}" for m in on_disk]
    assert sorted(
        p.name for p in (ROOT / "tangle").iterdir() if p.is_dir() and p.name != "__pycache__"
    ) == sorted(NOT_CORE)


def test_core_never_prints_nor_uses_ambient_randomness() -> None:
    """What an import contract cannot see: ``print`` and the module-level ``random``
    functions (a ``random.Random`` passed in is the only randomness)."""
    for module in core_modules():
        path = ROOT / "tangle" / f"{module}.py"
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"tangle/{module}.py prints"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert not (node.value.id == "random" and node.attr != "Random"), (
                    f"tangle/{module}.py uses the module-level random.{node.attr}"
                )


def test_public_api_is_sorted_and_complete() -> None:
    assert tangle.__all__ == sorted(tangle.__all__)
    for name in tangle.__all__:
        assert hasattr(tangle, name), name


def test_every_cited_rule_exists_in_protocol() -> None:
    """Code and tests cite §n.m and R1–R6; each must be defined in docs/PROTOCOL.md."""
    spec = (ROOT / "docs" / "PROTOCOL.md").read_text()
    defined = set(re.findall(r"^\*\*(§\d+\.\d+)", spec, re.M))
    defined |= set(re.findall(r"^## (§\d+)", spec, re.M))
    defined |= {f"§4.3.{n}" for n in range(1, 9)}  # the numbered list of §4.3
    rules = set(re.findall(r"^- \*\*(R\d)\*\*", spec, re.M))
    assert rules == {f"R{n}" for n in range(1, 7)}
    cited: dict[str, str] = {}
    for folder in ("tangle", "pow", "wallet", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for ref in re.findall(r"§\d+(?:\.\d+)*", path.read_text()):
                cited.setdefault(ref, str(path.relative_to(ROOT)))
            for ref in re.findall(r"\bR[1-9]\b", path.read_text()):
                assert ref in rules, f"{path} cites {ref}, which PROTOCOL.md does not define"
    undefined = {ref: where for ref, where in cited.items() if ref not in defined}
    assert not undefined, f"cited but not defined in PROTOCOL.md: {undefined}"
    assert len(cited) > 25  # the code really does cite the spec


def test_every_section_has_a_test() -> None:
    """Each rule section of §4–§8 is cited by at least one test."""
    cited = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        if path.name != Path(__file__).name:  # this file's own list does not count
            cited |= set(re.findall(r"§\d+\.\d+", path.read_text()))
    required = {
        "§2.1",
        "§2.2",
        "§3.1",
        "§3.2",
        "§4.1",
        "§4.2",
        "§5.2",
        "§5.3",
        "§5.6",
        "§5.7",
        "§6.1",
        "§6.2",
        "§6.4",
        "§7.1",
        "§7.3",
        "§7.4",
        "§7.5",
        "§7.6",
        "§8.1",
        "§8.2",
        "§8.3",
        "§8.4",
        "§8.6",
    }
    assert required <= cited, f"sections without a citing test: {sorted(required - cited)}"


MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    """A module that grows past this holds more than one reason to change: split it."""
    long = {
        str(path.relative_to(ROOT)): n
        for folder in ("tangle", "pow", "wallet")
        for path in (ROOT / folder).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
