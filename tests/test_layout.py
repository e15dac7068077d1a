"""The package's layout rules: layers import only the layers below them, no import cycles, no function over
120 lines, and the report side (``bench table``) runs without torch, cv2 or PyAV installed."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "idlora_bench"
# Which layers each layer may import (directly or lazily inside a function). The flow is one way:
# core <- data, checkpoints, store <- report (result files only) ... models <- metrics; methods <- runner <- cli;
# selftest and curation sit beside the runner (they score media with metrics) and only the CLI imports them.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    "checkpoints": {"core"},
    "store": {"core"},
    "report": {"core", "store"},
    "models": {"core", "data", "checkpoints"},
    "metrics": {"core", "data", "checkpoints", "models"},
    "methods": {"core", "data"},
    "executors": {"core", "data", "checkpoints", "store", "metrics", "methods"},  # local metric-major + Ray actors
    "runner": {"core", "data", "checkpoints", "store", "report", "models", "metrics", "methods", "executors"},
    "selftest": {"core", "data", "checkpoints", "models", "metrics"},  # real-weight checks of a profile
    "curation": {"core", "data", "checkpoints", "store", "models", "metrics"},  # build, import, check splits
    "human": {"core", "data", "store", "report"},  # human studies: pages, answer server, analysis
    # submission bundles, validation, re-scoring through the runner, the static site
    "leaderboard": {"core", "data", "checkpoints", "store", "report", "metrics", "methods", "runner"},
    "cli": {"core", "data", "checkpoints", "store", "report", "models", "metrics", "methods", "runner", "selftest",
            "curation", "human", "leaderboard", "executors"},
    "compat": {"data"},  # idlora_bench/media.py and splits.py: import paths kept for this release
}
COMPAT_MODULES = {"idlora_bench.media", "idlora_bench.splits"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str | None:
    if module in COMPAT_MODULES:
        return "compat"
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package itself
    return parts[1]


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported idlora_bench module, line, at module level)`` for every import in the file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("idlora_bench"):
                found.append((name, node.lineno, id(node) in top_level))
    return found


def _package_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module an import name refers to (``from a.b import c`` may name a module or an attribute)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = sorted(m for m in _package_modules() if _layer(m) not in ALLOWED and m != "idlora_bench")
    assert not unknown, f"modules outside every layer: {unknown}"


def test_no_module_imports_a_layer_above_it() -> None:
    modules = _package_modules()
    violations = []
    for module, path in modules.items():
        layer = _layer(module)
        if layer is None:
            continue
        for name, line, _ in _imports(path):
            target = _resolve(name, modules)
            target_layer = _layer(target) if target else None
            if target_layer and target_layer != layer and target_layer not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(REPO_ROOT)}:{line} ({layer}) imports {name} ({target_layer})")
    assert not violations, "\n".join(violations)


def test_module_level_imports_have_no_cycle() -> None:
    modules = _package_modules()
    graph = {module: {t for name, _, top in _imports(path) if top and (t := _resolve(name, modules)) and t != module}
             for module, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


@pytest.mark.parametrize("root", ["idlora_bench", "reference_impl", "baselines", "scripts"])
def test_no_function_is_longer_than_120_lines(root: str) -> None:
    long = []
    for path in (REPO_ROOT / root).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 120:
                long.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "\n".join(long)


BLOCKED = ("torch", "cv2", "av", "dlib", "transformers", "diffusers", "onnxruntime", "resemblyzer", "whisper")


def test_bench_table_runs_with_torch_cv2_and_pyav_blocked(synth_split: Path, tmp_path: Path) -> None:
    from idlora_bench import runner

    runs = []
    for method in ("gt", "swap-speaker"):
        out = tmp_path / method
        runner.run(method, "synth", profile="fake", out_dir=out, cache_path=tmp_path / "cache.sqlite")
        runs.append(str(out))
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {BLOCKED!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked (core-only install)")
                return None

        sys.meta_path.insert(0, Block())
        import idlora_bench.report, idlora_bench.report.tables, idlora_bench.report.render
        from idlora_bench.cli import main
        code = main(["table", *{runs!r}, "--against", "gt", "--out", {str(tmp_path / "tables")!r}, "--plots"])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print("LOADED", loaded)
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout
    assert (tmp_path / "tables" / "table.md").is_file() and (tmp_path / "tables" / "forest.png").is_file()
