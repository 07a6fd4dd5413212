"""The house plan (docs/architecture.md), checked: modules in layers, each importing only from its
own layer or below; no import circle; the teaching core on torch alone; the Hub behind one door.

Imports are read from the source (every `import`, also inside functions), so a lazy import
that runs back up a layer is caught as well.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The layers of docs/architecture.md; a module may import from its own layer and those below.
LAYERS = {
    0: ["vlp.errors", "vlp.limits", "vlp.device", "vlp.atomic"],  # foundations: no model code
    1: ["vlp.layers", "vlp.vision", "vlp.tokenizer", "vlp.text", "vlp.packing", "vlp.parallel", "vlp.model", "vlp.generate",
        "vlp.attention"],  # the teaching core
    2: ["vlp.world", "vlp.data"],  # Shapes World and the training batches drawn from it
    3: ["vlp.checkpoint", "vlp.images"],  # checkpoints and images
    4: ["vlp.protocol", "vlp.api", "vlp.clip", "vlp.openclip", "vlp.blip", "vlp.compose", "vlp.hub"],
    5: ["vlp.index", "vlp.faiss_index", "vlp.index_items", "vlp.index_store", "vlp.index_cli", "vlp.train",
        "vlp.schedule", "vlp.run_folder",
        "vlp.evaluate", "vlp.cli", "vlp.__main__", "vlp"],  # uses; `vlp` is the package's front door
    6: ["demo", "benchmarks", "app"],  # the demo and the benchmarks
}
THIRD_PARTY_OF_THE_CORE = {"torch", "numpy", "tokenizers"}  # all the teaching core may import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    files = [*ROOT.glob("vlp/**/*.py"), *ROOT.glob("demo/**/*.py"), *ROOT.glob("benchmarks/**/*.py"), ROOT / "app.py"]
    return {module_name(f): f for f in files}


def imports_of(path: Path, name: str) -> set[str]:
    """Every module `path` imports (absolute names), wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from vlp import world`
    return found


def _nodes(tree: ast.AST):
    """Every node, except under `if TYPE_CHECKING:` (names for annotations, never imported)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from _nodes(node)


def owner(module: str, known: dict[str, Path]) -> str | None:
    """The known module (or package) that `module` names: vlp.world.scene → vlp.world.scene."""
    while module and module not in known:
        module = module.rpartition(".")[0]
    return module or None


def layer_of(module: str) -> int:
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (layer, len(prefix))
    assert best is not None, f"{module} is in no layer of docs/architecture.md; add it to LAYERS"
    return best[0]


def graph() -> dict[str, set[str]]:
    known = all_modules()
    edges = {}
    for name, path in known.items():
        targets = {owner(m, known) for m in imports_of(path, name)}
        edges[name] = {t for t in targets if t and t != name and t != name.rpartition(".")[0]}
    return edges


def test_every_import_stays_in_its_layer_or_goes_down():
    upward = [f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
              for a, targets in graph().items() for b in targets if layer_of(b) > layer_of(a)]
    assert upward == []


def test_no_import_circle():
    edges = graph()
    # A package's __init__ re-exporting its own modules is not a circle through them.
    for name in edges:
        edges[name] = {t for t in edges[name] if not (name.startswith(t + ".") and t in edges)}
    state: dict[str, int] = {}  # 1 on the path, 2 done
    circles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" → ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_teaching_core_imports_torch_numpy_and_tokenizers_only():
    known = all_modules()
    outside = {}
    for name in LAYERS[1]:
        for m in imports_of(known[name], name):
            top = m.split(".")[0]
            if top not in {"vlp", "__future__"} and top not in THIRD_PARTY_OF_THE_CORE and not _stdlib(top):
                outside.setdefault(name, set()).add(top)
    assert outside == {}


def test_only_the_real_weight_loaders_reach_the_hub_and_nothing_in_vlp_needs_gradio():
    known = all_modules()
    users = {name for name, targets in graph().items() if "vlp.hub" in targets}
    assert users <= {"vlp.openclip", "vlp.blip"}
    gradio = [name for name, path in known.items()
              if name.startswith("vlp") and any(m.split(".")[0] == "gradio" for m in imports_of(path, name))]
    assert gradio == []


@pytest.mark.parametrize("folder", ["vlp", "demo"])
def test_no_module_is_over_450_lines(folder):
    long = {str(f.relative_to(ROOT)): n for f in (ROOT / folder).rglob("*.py")
            if (n := len(f.read_text().splitlines())) > 450}
    assert long == {}


def _stdlib(name: str) -> bool:
    import sys

    return name in sys.stdlib_module_names
