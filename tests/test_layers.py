"""The package's shape: layers that import only downwards, small modules, no private names
borrowed across modules.

Layers, in the order of the data flow (a module may import from its own layer and the
layers before it, never from a later one)::

    config, errors, leakhunter/__init__  ->  runtime  ->  recordings  ->  dataset  ->  model
    ->  training  ->  decisions  ->  locate  ->  report  ->  learn  ->  tune  ->  demo
    ->  cli, __main__

Every import counts, also one inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import leakhunter

PACKAGE = Path(leakhunter.__file__).parent
LAYERS = ("", "runtime", "recordings", "dataset", "model", "training", "decisions",
          "locate", "report", "learn", "tune", "study", "demo", "cli")
FIRST = {"config": "", "errors": "", "__init__": "", "__main__": "cli"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["leakhunter", *parts])


def layer(module: str) -> int:
    """The layer of ``leakhunter.X...`` (by X)."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS.index(FIRST.get(top, top))


def imported(path: Path, text: str | None = None) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every leakhunter import in ``path`` (or in ``text``,
    read as if it were that file), relative ones resolved."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    text = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] == "leakhunter":
                names = [a.name for a in node.names]
                # "from leakhunter.x import y" may import module x.y itself
                targets = [f"{source}.{n}" if (PACKAGE / Path(*f"{source}.{n}".split(".")[1:])
                                                ).with_suffix(".py").exists()
                           or (PACKAGE / Path(*f"{source}.{n}".split(".")[1:])).is_dir()
                           else source for n in names]
                for target, name in zip(targets, names):
                    out.append((node.lineno, target, [name]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names
                    if a.name.split(".")[0] == "leakhunter"]
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer(module_name(path))  # raises for a top-level name missing from LAYERS


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downwards(path: Path) -> None:
    here = module_name(path)
    upward = [f"line {line}: {target} ({LAYERS[layer(target)] or 'top'} comes after "
              f"{LAYERS[layer(here)] or 'top'})"
              for line, target, _ in imported(path) if layer(target) > layer(here)]
    assert not upward, f"{here} imports from a later layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_borrowed_from_another_module(path: Path) -> None:
    here = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    borrowed = [f"line {line}: {name} from {target}" for line, target, names in imported(path)
                for name in names if name.startswith("_") and not name.startswith("__")
                and target != here]
    # module._private through an imported module
    modules = {a.asname or a.name for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) for a in node.names
               if any(t.endswith("." + a.name) for _, t, n in imported(path) if n == [a.name])}
    borrowed += [f"line {node.lineno}: {node.value.id}.{node.attr}"
                 for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and isinstance(node.value, ast.Name) and node.value.id in modules
                 and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert not borrowed, f"{here} uses private names of other modules:\n" + "\n".join(borrowed)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_400_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)}: {lines} lines (two ideas?)"


def test_the_checker_sees_upward_imports_and_borrowed_names() -> None:
    """The rules can fail: imports a runtime module must not make are found, resolved."""
    assert layer("leakhunter.config") < layer("leakhunter.runtime.log") \
        < layer("leakhunter.training.train") < layer("leakhunter.cli") \
        == layer("leakhunter.__main__")
    source = ("from ..training import train\n"
              "def later():\n    from ..decisions.predict import _score\n")
    found = imported(PACKAGE / "runtime" / "log.py", source)
    assert found == [(1, "leakhunter.training.train", ["train"]),
                     (3, "leakhunter.decisions.predict", ["_score"])]
    assert all(layer(target) > layer("leakhunter.runtime.log") for _, target, _ in found)
