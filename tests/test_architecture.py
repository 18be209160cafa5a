"""The house rules of docs/architecture.md, checked on the source text (nothing is imported).

Every rule reads the modules under ``engine/`` and ``connectors/`` with :mod:`ast`:

- no import cycles between modules (imports inside functions and ``importlib.import_module("…")``
  with a literal name count too: a deferred import is still a dependency);
- the core (``schema``, ``settings``, ``interval``, ``clock``, ``errors``, ``validate/``,
  ``tables/``, ``output/``) imports neither ``connectors`` nor the orchestration rooms
  (``pipeline/``, ``cli/``, ``app/``, ``report/``, ``demo/``);
- ``connectors`` imports from the engine only its contract: ``engine.schema``, ``engine.errors``,
  ``engine.clock``, ``engine.killpoint`` (the crash tests' hook) and ``engine.durable`` (the
  durable writes both sides share);
- ``engine.app`` is the only engine room that knows the connector registry;
- the pure rooms (``validate/``, ``tables/`` and the core modules) do no I/O and never collect;
  collecting and writing happen in ``pipeline/`` and in the few places listed in
  :data:`COLLECTS_OUTSIDE_PIPELINE`, each with its reason;
- the chain-order fast path of the callback requests (``requests_from_runs``, whose rows must
  already be in chain order) is called only by the store's reader, which proves that order;
- rooms stay small: at most :data:`MAX_MODULES` modules at the top of a folder, at most
  :data:`MAX_LINES` lines in a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "connectors")

CORE = (
    "engine.schema",
    "engine.settings",
    "engine.interval",
    "engine.clock",
    "engine.errors",
    "engine.validate",
    "engine.tables",
    "engine.output",
)
ORCHESTRATION = (
    "engine.pipeline",
    "engine.cli",
    "engine.app",
    "engine.report",
    "engine.demo",
    "engine.serve",
    "engine.distributed",
)
CONNECTORS_MAY_IMPORT = (
    "engine.schema",
    "engine.errors",
    "engine.clock",
    "engine.killpoint",
    "engine.durable",
)
PURE = ("engine.schema", "engine.settings", "engine.interval", "engine.validate", "engine.tables")

#: Modules outside ``engine/pipeline/`` that collect or write, and why they may.
COLLECTS_OUTSIDE_PIPELINE = {
    "engine.durable": "fsync and the atomic replace every durable write shares",
    "engine.output.files": "the durable write primitives the pipeline calls",
    "engine.output.delta": "the store's transactional commit and its integrity check",
    "engine.output.datafiles": "writes a store table's data files (delta commits them)",
    "engine.output.contacts": "validates contacts into the store's files as they stream",
    "engine.output.inputs": "reads an NDJSON input's lines to set aside those it cannot read",
    "engine.output.attempts": "validates callback attempts into the store's files day by day",
    "engine.output.store": "the callback store's writer and its order-checking reader",
    "engine.output.location": "uploads a store's staged files to the object store it stands for",
    "engine.output.vendor": "reads the vendor profiles (TOML) its exports are defined by",
    "engine.output.read": "a dense read checks its window against the stored rows' span",
    "engine.report.build": "the report reads a committed store and writes one HTML file",
    "engine.report.data": "the report's numbers, read from a committed store",
    "engine.report.sections": "the report's tables, read from a committed store",
    "engine.report.planning": "the report's staffing and forecast numbers, from a committed store",
    "engine.report.interactive": "the report's chart figures, read from a committed store",
    "engine.demo.contacts": "the synthetic generator materialises its frame",
    "engine.demo.stack": "the demo writes the emulators' seeded data once",
    "engine.cli.callbacks": "callback-metrics prints one document read from the store",
    "engine.cli.export": "export commands read a committed store and write one file each",
    "engine.cli.main": "a broken pipe: standard output pointed at the null device, as Python says",
    "engine.serve.documents": "serve reads the committed store's tables once per version",
    "engine.tables.callback_metrics": "renders the seed-000 JSON document: one collect, one row",
    "engine.distributed.ray_engine": "Ray tasks collect their day's table; the driver the merge",
    "engine.distributed.callbacks": "Ray tasks collect their day's tables; the driver the merge",
    "engine.distributed.cluster": "hands a task's frames back as Arrow IPC bytes, and reads them",
    "engine.distributed.helper": "its helper process writes standard error to a log file",
}

MAX_MODULES = 13
MAX_LINES = 420

#: Calls that touch data outside the process: Polars' readers, collectors and writers, and files.
#: (A call of one of our own functions that writes, such as ``write_report(...)``, is not counted:
#: the rule is about where the act happens.)
_IO_CALLS = frozenset(
    {"collect", "collect_all", "open", "read_text", "write_text", "read_bytes", "write_bytes"}
)
_IO_PREFIXES = ("sink_", "scan_", "read_")
_POLARS_WRITERS = frozenset(
    {"write_parquet", "write_csv", "write_ndjson", "write_json", "write_ipc", "write_delta"}
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


MODULES = _sources()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _resolve(name: str) -> str | None:
    """The project module ``name`` denotes (a module, or the package holding a name)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str, *, runtime_only: bool = True) -> set[str]:
    """The project modules ``module`` imports (``from a import b`` counts ``a.b`` if a module)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    nodes = _walk_runtime(tree) if runtime_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.add(target)
    # ``from pkg import sub`` also names pkg itself; keep the most specific module only.
    return {m for m in found if not any(o.startswith(m + ".") for o in found)}


def _inside(module: str, rooms: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in rooms)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = {m: imports(m) for m in MODULES}
    # A package's __init__ may re-export its own submodules; a submodule importing its package
    # back is then a cycle in name only when the package is a facade. Count every other edge.
    assert _cycles(graph) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _inside(m, CORE)))
def test_core_imports_no_connector_and_no_orchestration(module: str) -> None:
    bad = sorted(
        m
        for m in imports(module, runtime_only=False)
        if m.startswith("connectors") or _inside(m, ORCHESTRATION)
    )
    assert bad == [], f"{module} (core) imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("connectors")))
def test_connectors_import_only_the_engine_contract(module: str) -> None:
    bad = sorted(
        m
        for m in imports(module, runtime_only=False)
        if m.startswith("engine") and m != "engine" and not _inside(m, CONNECTORS_MAY_IMPORT)
    )
    assert bad == [], f"{module} imports {bad} (connectors may import {CONNECTORS_MAY_IMPORT})"


def test_only_the_app_room_knows_the_connector_registry() -> None:
    knows = sorted(
        m
        for m in MODULES
        if m.startswith("engine")
        and "connectors.registry" in imports(m, runtime_only=False)
        and not _inside(m, ("engine.app",))
    )
    assert knows == []


def _io_calls(module: str) -> list[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (
            func.attr
            if isinstance(func, ast.Attribute)
            else func.id
            if isinstance(func, ast.Name)
            else ""
        )
        method = isinstance(func, ast.Attribute)
        if name in _IO_CALLS or (
            method and (name in _POLARS_WRITERS or name.startswith(_IO_PREFIXES))
        ):
            calls.append(f"{name}() at line {node.lineno}")
    return calls


#: Modules of the pure rooms that render a document (a dict) and so collect one aggregate row.
RENDERS_A_DOCUMENT = frozenset({"engine.tables.callback_metrics"})


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if _inside(m, PURE) and m not in RENDERS_A_DOCUMENT)
)
def test_pure_rooms_do_no_io_and_never_collect(module: str) -> None:
    assert _io_calls(module) == [], f"{module} is pure (LazyFrame in, LazyFrame out)"


def test_document_renderers_only_collect() -> None:
    for module in RENDERS_A_DOCUMENT:
        assert all(c.startswith(("collect()", "collect_all()")) for c in _io_calls(module)), module


def test_only_the_store_reader_reduces_runs_without_sorting() -> None:
    callers = sorted(
        m
        for m, path in MODULES.items()
        if "requests_from_runs" in path.read_text(encoding="utf-8")
        and m not in {"engine.tables.callback_requests", "engine.output.store"}
    )
    assert callers == []


def test_only_the_pipeline_collects_and_writes() -> None:
    outside = {
        m
        for m in MODULES
        if m.startswith("engine")
        and not _inside(m, ("engine.pipeline",))
        and any(c.startswith(("collect", "write_", "sink_", "open")) for c in _io_calls(m))
    }
    assert sorted(outside - set(COLLECTS_OUTSIDE_PIPELINE)) == []
    stale = sorted(set(COLLECTS_OUTSIDE_PIPELINE) - outside)
    assert stale == [], f"no longer collects or writes: remove {stale} from the exception list"


def test_rooms_stay_small() -> None:
    folders: dict[Path, int] = {}
    for path in MODULES.values():
        if path.name != "__init__.py":
            folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = {str(f.relative_to(ROOT)): n for f, n in folders.items() if n > MAX_MODULES}
    assert crowded == {}
    long = {
        m: n
        for m, p in MODULES.items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def _string_format_calls(path: Path) -> list[int]:
    """Lines of ``pl.format(...)`` (and ``polars.format(...)``) calls in the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in {"pl", "polars"}
    ]


def test_no_polars_string_format() -> None:
    """``pl.format`` is not used: ``pl.concat_str`` is. Polars 2.1's ``str.format`` kernel walks
    a column's chunks assuming none is empty, and the streaming engine hands it one after a
    filter (seen: a decoded landing, ``map_batches`` then ``is_in``): the process panics
    (``assertion failed: i < self.len()``) in the middle of a rebuild. The tests' mappings run
    in the same plans, so they are held to it too."""
    found = {
        str(path.relative_to(ROOT)): lines
        for folder in (*PACKAGES, "tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := _string_format_calls(path))
    }
    assert found == {}


def test_the_string_format_finder_finds_a_call(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text('import polars as pl\nx = pl.format("a{}", "b")\ny = "{}".format(1)\n')
    assert _string_format_calls(source) == [2]
