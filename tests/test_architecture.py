"""The import rules of the package, checked by reading every module's imports with ``ast``.

The rules (docs/architecture.md):

* nothing in ``model``, ``io``, ``processing``, ``analysis`` or ``export`` imports
  ``steps``, ``batch``, ``cli`` or ``_napari`` (the algorithms never know the machinery
  above them);
* ``processing`` imports nothing from ``export`` (arrays in, arrays out);
* only ``_napari`` imports Qt, napari or the widget toolkits;
* no import cycle, neither between the packages nor between modules.

Every import counts, including those inside functions: a late import is still a
dependency. A small self-check runs the same checker on a fake package that breaks each
rule, so that a checker that finds nothing cannot pass for a clean package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import napari_nanosims

PACKAGE = "napari_nanosims"
SOURCE = Path(napari_nanosims.__file__).parent

LOWER = {"model", "io", "processing", "analysis", "export", "correlate"}
UPPER = {"steps", "batch", "cli", "_napari"}
GUI = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt",
       "vispy"}
MAX_LINES = 420  # "about 400"


def module_name(path: Path, root: Path) -> str:
    """``root/io/reader.py`` -> ``napari_nanosims.io.reader`` (packages without __init__)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file: absolute names.

    ``from . import x`` is an import of the submodule ``package.x`` when there is one,
    else of the package; an external import is reported by its top-level name.
    """
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name if alias.name.startswith(root.name + ".")
                          else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import a, b: submodules or package names
                    folder = root.parent.joinpath(*target.split("."))
                    for alias in node.names:
                        if (folder / f"{alias.name}.py").exists() or \
                                (folder / alias.name).is_dir():
                            found.add(f"{target}.{alias.name}")
                        else:
                            found.add(target)
                else:
                    found.add(target)
            elif node.module.split(".")[0] == root.name:
                found.add(node.module)
            else:
                found.add(node.module.split(".")[0])
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules and external top-level names it imports."""
    return {module_name(path, root): imports_of(path, root) for path in sorted(root.rglob("*.py"))}


def component(module: str, root_name: str) -> str | None:
    """The first level under the package (``io``, ``steps``...); None for the root itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == root_name and len(parts) > 1 else None


def rule_violations(graph: dict[str, set[str]], root_name: str) -> list[str]:
    """Every import that breaks the layering, Qt and processing rules, as readable lines."""
    broken = []
    for module, imported in sorted(graph.items()):
        home = component(module, root_name)
        for target in sorted(imported):
            where = component(target, root_name) if target.startswith(root_name + ".") else None
            if home in LOWER and where in UPPER:
                broken.append(f"{module} imports {target}: {home}/ must not know {where}/")
            if home == "processing" and where == "export":
                broken.append(f"{module} imports {target}: processing/ writes no files")
            if target in GUI and home != "_napari":
                broken.append(f"{module} imports {target}: only _napari/ may import Qt or "
                              "napari")
    return broken


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph (a list of nodes, first repeated last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def package_edges(graph: dict[str, set[str]], root_name: str) -> dict[str, set[str]]:
    """Which first-level package (or top module) imports which other one."""
    edges: dict[str, set[str]] = {}
    for module, imported in graph.items():
        home = component(module, root_name)
        if home is None:
            continue
        for target in imported:
            where = component(target, root_name)
            if where is not None and where != home:
                edges.setdefault(home, set()).add(where)
    return edges


def module_edges(graph: dict[str, set[str]], root_name: str) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a package's ``__init__`` is its name).

    The root package's ``__init__`` is left out: it imports its public names on first use
    only (module ``__getattr__``), which is not an import of the rest at import time.
    """
    return {module: {t for t in imported if t.startswith(root_name + ".") and t in graph}
            for module, imported in graph.items() if module != root_name}


# -- the package ----------------------------------------------------------------------
def test_the_checker_sees_the_package():
    graph = import_graph(SOURCE)
    # it reads function-level imports: steps.analysis imports analysis.rois in a function
    assert "napari_nanosims.analysis.rois" in graph["napari_nanosims.steps.analysis"]
    components = {component(module, PACKAGE) for module in graph}
    assert {"model", "io", "processing", "analysis", "export", "steps", "batch", "cli",
            "_napari", "testing"} <= components


def test_lower_packages_never_import_the_machinery_and_only_napari_imports_qt():
    assert rule_violations(import_graph(SOURCE), PACKAGE) == []


def test_no_import_cycle_between_packages():
    assert find_cycle(package_edges(import_graph(SOURCE), PACKAGE)) is None


def test_no_import_cycle_between_modules():
    assert find_cycle(module_edges(import_graph(SOURCE), PACKAGE)) is None


def test_no_module_is_much_over_400_lines():
    long = {str(path.relative_to(SOURCE)): n for path in SOURCE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_every_public_name_is_importable_from_the_root():
    missing = [name for name in napari_nanosims.__all__
               if not hasattr(napari_nanosims, name)]
    assert missing == []
    assert set(napari_nanosims.__all__) <= set(dir(napari_nanosims))


# -- the checker itself, on a fake package that breaks every rule ---------------------
FAKE = {
    "__init__.py": "",
    "io/__init__.py": "",
    "io/reader.py": "def f():\n    from ..steps import runner\n",  # late upward import
    "processing/__init__.py": "",
    "processing/shift.py": "from ..export.tiff import write\nimport numpy\n",
    "export/__init__.py": "",
    "export/tiff.py": "from ..processing import shift\n",  # cycle export <-> processing
    "steps/__init__.py": "",
    "steps/runner.py": "from . import other\n",
    "steps/other.py": "import qtpy.QtCore\nfrom .runner import x\n",  # Qt; cycle of modules
    "_napari/__init__.py": "",
    "_napari/widget.py": "import napari\nfrom qtpy import QtWidgets\n",
}


def _fake_package(tmp_path) -> Path:
    root = tmp_path / "fakepkg"
    for name, text in FAKE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_checker_reports_each_broken_rule_on_a_fake_package(tmp_path):
    root = _fake_package(tmp_path)
    graph = import_graph(root)
    assert "fakepkg.steps" in graph["fakepkg.io.reader"]  # read inside the function
    broken = rule_violations(graph, "fakepkg")
    assert any(line.startswith("fakepkg.io.reader imports fakepkg.steps") for line in broken)
    assert any("processing/ writes no files" in line for line in broken)
    assert any(line.startswith("fakepkg.steps.other imports qtpy") for line in broken)
    assert not any(line.startswith("fakepkg._napari") for line in broken)  # Qt allowed there
    assert len(broken) == 3


def test_checker_finds_cycles_on_a_fake_package(tmp_path):
    graph = import_graph(_fake_package(tmp_path))
    package_cycle = find_cycle(package_edges(graph, "fakepkg"))
    assert package_cycle is not None and set(package_cycle) == {"export", "processing"}
    module_cycle = find_cycle(module_edges(graph, "fakepkg"))
    assert module_cycle is not None and module_cycle[0] == module_cycle[-1]
    # without the two cyclic imports there is no cycle left
    acyclic = {module: targets - {"fakepkg.processing", "fakepkg.processing.shift",
                                  "fakepkg.steps.runner", "fakepkg.steps.other"}
               for module, targets in graph.items()}
    assert find_cycle(package_edges(acyclic, "fakepkg")) is None
    assert find_cycle(module_edges(acyclic, "fakepkg")) is None
