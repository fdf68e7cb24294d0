"""The package's layering (docs/architecture.md) and the runnable examples in its docstrings."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layers from the bottom up (docs/architecture.md); a module imports only from its own layer or
#: below. A name stands for a module and everything under it.
LAYERS = [
    ["umeta.errors"],
    ["umeta.params", "umeta.registry", "umeta.numeric", "umeta.metrics", "umeta.results",
     "umeta.report", "umeta.checkpoint", "umeta.config", "umeta.distributed", "umeta.cuda_graph",
     "umeta.files", "umeta.memory", "umeta.progress", "umeta.label_maps"],
    ["umeta.recipes", "umeta.data"],
    ["umeta.tasks"],
    ["umeta.models"],
    ["umeta.learners"],
    ["umeta.build"],
    ["umeta.evaluate", "umeta.train", "umeta.robustness"],
    ["umeta.adapt"],
    ["umeta.estimators", "umeta.pretrained", "umeta.segmenter", "umeta.table_method"],
    ["umeta.mainjob", "umeta.compare"],
    ["umeta.cli", "umeta.__main__"],
]


def layer_of(module: str) -> int:
    if module == "umeta":
        return 0  # the package itself exports UmetaError only
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def module_imports() -> dict[str, set[str]]:
    """Every umeta module -> the umeta modules it imports, at module level or inside functions."""
    graph = {}
    for path in sorted((SRC / "umeta").rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("umeta"):
                deps.add(node.module)
                if node.module == "umeta":  # from umeta import metrics
                    deps.update(f"umeta.{a.name}" for a in node.names
                                if a.name != "UmetaError" and not a.name.startswith("__"))
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("umeta"))
        graph[name] = deps
    return graph


def test_no_import_climbs_up_the_layers():
    bad = [f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})"
           for mod, deps in module_imports().items() for dep in deps
           if layer_of(dep) > layer_of(mod)]
    assert not bad, "\n".join(bad)


def test_modules_import_each_other_without_cycles():
    graph = module_imports()
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    done, on_path = set(), []

    def visit(module: str) -> None:
        if module in on_path:
            raise AssertionError("import cycle: " + " -> ".join(on_path[on_path.index(module):]
                                                                + [module]))
        if module in done:
            return
        on_path.append(module)
        for dep in graph[module]:
            if not (module.startswith(dep + ".") or dep == "umeta"):  # a package's __init__
                visit(dep)
        on_path.pop()
        done.add(module)

    for module in graph:
        visit(module)


@pytest.mark.parametrize("module", ["umeta.estimators", "umeta.build", "umeta.params",
                                    "umeta.segmenter", "umeta.adapt.segment", "umeta.metrics",
                                    "umeta.tasks.mosaic", "umeta.learners.segment",
                                    "umeta.models.dense", "umeta.label_maps",
                                    "umeta.data.textures",
                                    "umeta.data.table_priors", "umeta.data.table_sets",
                                    "umeta.data.table_input", "umeta.tasks.tables",
                                    "umeta.models.table_encoder", "umeta.learners.table",
                                    "umeta.adapt.embed", "umeta.table_method"])
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
