"""The import directions of bench/ and impl/, and the README's layout section.

Every `import` and `from ... import` in every module under bench/ and impl/ is read with
`ast` (those inside functions too) and checked against `ALLOWED`: the harness is one package
per stage of the data flow, data -> train -> models -> eval -> run -> report -> commands -> cli, and a
stage imports only from the stages before it. The models in impl/ import nothing from bench,
and a model file imports no other model file: only impl's shared helper modules (a leading
underscore, e.g. impl/_checks.py).
"""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# The units the directions are stated for: each bench/ package, bench's top-level modules,
# and impl (its model files and helper modules are told apart below).
_BASE = {"bench.errors", "bench.timing"}
_DATA = _BASE | {"bench.data"}
_TRAIN = _DATA | {"bench.train", "impl"}
_MODELS = _TRAIN | {"bench.models"}
_EVAL = _MODELS | {"bench.eval"}
_RUN = _EVAL | {"bench.run"}
_REPORT = _RUN | {"bench.report"}
ALLOWED: dict[str, set[str]] = {
    "bench": set(),  # the root package's __init__: a docstring only
    "bench.errors": set(),
    "bench.timing": set(),
    "bench.data": _BASE,
    "bench.train": _DATA | {"impl"},
    "bench.models": _TRAIN,
    "bench.eval": _MODELS,
    "bench.run": _EVAL,
    "bench.report": _RUN,
    "bench.commands": _REPORT,
    "bench.cli": _REPORT | {"bench.cli", "bench.commands"},
    "bench.__main__": {"bench.cli"},
    "impl": set(),  # nothing from bench; impl's own files are checked by test_impl_model_files_...
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    paths = sorted(ROOT.glob("bench/**/*.py")) + sorted(ROOT.glob("impl/**/*.py"))
    return {_module_name(p): p for p in paths}


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported name) for every import in the file, nested ones included.

    `from a.b import c` yields `a.b.c` (c may be a module or a name in a.b: `_target`
    resolves it); relative imports are made absolute.
    """
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _target(imported: str) -> str | None:
    """The module of ours an imported name lives in (longest match), or None for a library."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def _unit(module: str) -> str:
    """The entry of ALLOWED a module belongs to: its bench package, bench's module, or impl."""
    parts = module.split(".")
    if parts[0] == "impl":
        return "impl"
    return ".".join(parts[:2])


def _is_impl_helper(module: str) -> bool:
    return module.startswith("impl.") and module.split(".")[-1].startswith("_")


def _edges() -> list[tuple[str, int, str]]:
    """(importer, line, imported module) over every module of ours, duplicates kept."""
    return [(name, line, target) for name, path in MODULES.items() for line, imported in _imports(name, path)
            if (target := _target(imported)) is not None]


def test_every_module_is_in_the_table():
    assert "bench.data.datasets" in MODULES and "impl.glove" in MODULES  # the walk found the tree
    assert sorted({_unit(m) for m in MODULES} - set(ALLOWED)) == []


def test_bench_imports_follow_the_data_flow():
    wrong = [f"{MODULES[src].relative_to(ROOT)}:{line} imports {dst}"
             for src, line, dst in _edges()
             if _unit(src) != _unit(dst) and _unit(dst) not in ALLOWED[_unit(src)]]
    assert wrong == [], "imports against the data flow (see ALLOWED):\n" + "\n".join(wrong)


def test_impl_model_files_import_only_impl_helpers():
    wrong = [f"{MODULES[src].relative_to(ROOT)}:{line} imports {dst}"
             for src, line, dst in _edges()
             if _unit(src) == "impl" and dst != "impl" and not _is_impl_helper(dst)
             and not (src == "impl" or dst == src)]
    assert wrong == [], "impl files import another model or bench:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for src, _, dst in _edges():
        if dst != src:
            graph[src].add(dst)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_checker_sees_nested_and_relative_imports(tmp_path):
    # A test of the test: an import inside a function and a relative one are both found.
    path = tmp_path / "bench" / "data" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text("def f():\n    from ..run import results\n    import bench.report.render\n")
    found = [imported for _, imported in _imports("bench.data.x", path)]
    assert found == ["bench.run.results", "bench.report.render"]
    assert {_unit(_target(i)) for i in found} == {"bench.run", "bench.report"}
    assert not {"bench.run", "bench.report"} & ALLOWED["bench.data"]


# --- README --------------------------------------------------------------------------------


def _layout_section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, "README.md has no '## Layout' section"
    return match.group(1)


def test_readme_layout_names_every_package_and_impl_file():
    named = set(re.findall(r"`((?:bench|impl)/[\w/]*?(?:/|\.py))`", _layout_section()))
    missing_paths = sorted(p for p in named if not (ROOT / p).exists())
    assert missing_paths == [], f"README layout names paths that do not exist: {missing_paths}"
    packages = {f"{p.parent.relative_to(ROOT).as_posix()}/" for p in ROOT.glob("bench/*/__init__.py")}
    impl_files = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("impl/*.py") if p.name != "__init__.py"}
    assert len(packages) >= 6 and len(impl_files) >= 7
    assert sorted((packages | impl_files) - named) == [], "README layout misses these"


# --- package docstrings ----------------------------------------------------------------------


def test_every_package_docstring_names_its_modules():
    """A package's first file is its table of contents: its docstring names each of its
    modules as `name`, so a module added without a word on what it is for fails here."""
    inits = sorted(ROOT.glob("bench/**/__init__.py")) + [ROOT / "impl" / "__init__.py"]
    assert len(inits) >= 8  # bench, its stage packages and impl
    missing = []
    for init in inits:
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        named = set(re.findall(r"`([\w.]+)`", docstring))
        missing += [f"{init.relative_to(ROOT)}: `{module.stem}`" for module in sorted(init.parent.glob("*.py"))
                    if module.name != "__init__.py" and module.stem not in named]
    assert missing == [], "package docstrings that miss a module:\n" + "\n".join(missing)
