"""The package's shape: no import circle (lazy imports included), layers that only import
downwards, forecasting subpackages that only import their own or lower ones, and no company
named in the generic forecasting code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "forecasting", "experiments")
#: Layers, lowest first: a module may import its own layer or a lower one.
LAYERS = {"features": 0, "forecasting": 1, "experiments": 2}
#: Subpackages of `forecasting`, lowest first: a module may import its own subpackage or a lower
#: one. Modules directly in `forecasting/` (the public surface) rank above every subpackage.
SUBPACKAGES = ("core", "methods", "rolling", "reconcile", "rollup", "scenarios", "claims")
#: What generic code must not name (a company or its segments; "draws" is no "aws"): profiles name them.
COMPANY_WORDS = re.compile(r"(?<![a-z])(aws|north_america|amazon)(?![a-z])", re.IGNORECASE)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every package module `path` imports, at the top or inside a function (lazy), as the
    module itself or its nearest package module (``from a.b import c`` -> ``a.b.c`` if that is
    a module, else ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                add(full if full in modules else node.module)
    if ROOT in path.resolve().parents:
        found.discard(module_name(path.resolve()))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    names = set(modules)
    return {m: imports_of(p, names) for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_a_lazy_circle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_imports_of_sees_lazy_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from forecasting.rolling.backtest import backtest\n    import features.loader\n")
    assert imports_of(src, {"forecasting.rolling.backtest", "features.loader", "forecasting"}) == {
        "forecasting.rolling.backtest", "features.loader"}


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_lower_layers_never_import_higher_ones():
    bad = [f"{m} imports {dep}" for m, deps in import_graph().items() for dep in deps
           if LAYERS[dep.split(".")[0]] > LAYERS[m.split(".")[0]]]
    assert not bad, "\n".join(bad)


def subpackage_rank(module: str) -> int:
    """The rank of a `forecasting` module's subpackage (`SUBPACKAGES`); the package's own
    modules rank above them all. A subpackage missing from the ranking is an error."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not (ROOT / "forecasting" / parts[1]).is_dir()):
        return len(SUBPACKAGES)
    assert parts[1] in SUBPACKAGES, f"forecasting.{parts[1]} is not in SUBPACKAGES: give it a rank"
    return SUBPACKAGES.index(parts[1])


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} imports {dep}" for m, deps in sorted(graph.items()) if m.startswith("forecasting")
            for dep in sorted(deps) if dep.startswith("forecasting") and subpackage_rank(dep) > subpackage_rank(m)]


def test_upward_imports_between_subpackages_are_found():
    graph = {"forecasting.core.frames": {"forecasting.rollup.paths"}, "forecasting.claims.run": {"forecasting.core.frames"}}
    assert upward_imports(graph) == ["forecasting.core.frames imports forecasting.rollup.paths"]


def test_every_forecasting_module_is_in_a_ranked_subpackage():
    dirs = {p.name for p in (ROOT / "forecasting").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert dirs == set(SUBPACKAGES), f"unranked or missing subpackages: {sorted(dirs ^ set(SUBPACKAGES))}"


def test_forecasting_subpackages_only_import_their_own_or_lower_ones():
    bad = upward_imports(import_graph())
    assert not bad, "upward import between forecasting subpackages (order: " + " < ".join(SUBPACKAGES) + "):\n" + "\n".join(bad)


def test_only_the_tracking_modules_import_mlflow():
    allowed = {"experiments.tracking", "experiments.track_backtest", "experiments.track_runs", "experiments.flavor"}
    users = set()
    for name, path in package_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "mlflow" or m.startswith("mlflow.") for m in mods):
                users.add(name)
    assert users <= allowed, f"modules importing mlflow outside the tracking modules: {sorted(users - allowed)}"
    assert not any(u.startswith("forecasting") for u in users)


def test_no_company_is_named_in_the_forecasting_code():
    hits = []
    for path in sorted((ROOT / "forecasting").rglob("*.py")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for m in COMPANY_WORDS.finditer(line):
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {m.group(0)!r} in {line.strip()[:100]}")
    assert not hits, "generic code names a company (put it in its profile, data/companies/):\n" + "\n".join(hits)


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def test_every_public_module_declares_what_it_exports():
    """Each module of `features/` and `forecasting/` (not ``__init__``, not private) has an
    ``__all__`` naming only what it defines or imports at its top level, and every public
    function and class it defines is in it (catches a new public function left out, or a name
    listed after it was renamed)."""
    problems = []
    for pkg in ("features", "forecasting"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path.name.startswith("_"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            declared = next((n.value for n in tree.body if isinstance(n, ast.Assign)
                             and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)), None)
            rel = path.relative_to(ROOT)
            if declared is None:
                problems.append(f"{rel}: no __all__")
                continue
            listed = set(ast.literal_eval(declared))
            missing = listed - _top_level_names(tree)
            public = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                      and not n.name.startswith("_")}
            if missing:
                problems.append(f"{rel}: __all__ lists undefined {sorted(missing)}")
            if public - listed:
                problems.append(f"{rel}: public but not in __all__: {sorted(public - listed)}")
    assert not problems, "\n".join(problems)
