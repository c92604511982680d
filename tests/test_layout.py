"""The shape of the house (docs/design.md): small functions, every import visible, the map of the
folders true. import-linter checks the import directions; these tests check what it cannot."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("recommender", "features", "training", "models")
MAX_FUNCTION_LINES = 80
MAX_CREATE_APP_LINES = 40


def _sources(*packages: str) -> Iterator[tuple[Path, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _length(node: ast.stmt) -> int:
    assert node.end_lineno is not None
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return node.end_lineno - start + 1


def test_no_function_in_recommender_is_longer_than_80_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name} ({_length(fn)} lines)"
        for path, tree in _sources("recommender")
        for fn in _functions(tree)
        if _length(fn) > MAX_FUNCTION_LINES
    ]
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines (split them by responsibility): {long}"


def test_create_app_is_short() -> None:
    found = [
        (path, fn)
        for path, tree in _sources("recommender")
        for fn in _functions(tree)
        if fn.name == "create_app" and "web" in path.parts
    ]
    assert len(found) == 1, f"expected one create_app in recommender/web, found {[str(p) for p, _ in found]}"
    _, fn = found[0]
    assert _length(fn) <= MAX_CREATE_APP_LINES, f"create_app has {_length(fn)} lines; at most {MAX_CREATE_APP_LINES}"


def _is_project_module(name: str | None) -> bool:
    return name is not None and name.split(".")[0] in PROJECT_PACKAGES


def test_no_module_of_the_project_is_loaded_by_a_string() -> None:
    """``importlib.import_module`` and ``__import__`` hide an edge from import-linter, mypy and readers."""
    calls = []
    for path, tree in _sources(*PROJECT_PACKAGES):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in {"import_module", "__import__", "spec_from_file_location"}:
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert calls == []


def _imports_project_module(body: list[ast.stmt]) -> bool:
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_project_module(node.module):
                return True
            if isinstance(node, ast.Import) and any(_is_project_module(a.name) for a in node.names):
                return True
    return False


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"} for n in names)


def test_no_import_of_the_project_is_guarded_by_except_import_error() -> None:
    """In one installed package the project's modules always exist: such a branch can never run."""
    guarded = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _sources(*PROJECT_PACKAGES)
        for node in ast.walk(tree)
        if isinstance(node, ast.Try)
        and any(_catches_import_error(h) for h in node.handlers)
        and _imports_project_module(node.body)
    ]
    assert guarded == []


def _design_table_folders() -> set[str]:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\|\s*`recommender/([a-z_]+)/`", text, flags=re.M))


def test_design_md_maps_exactly_the_sub_packages_of_recommender() -> None:
    packages = {p.parent.name for p in (ROOT / "recommender").glob("*/__init__.py")}
    folders = _design_table_folders()
    assert folders, "docs/design.md has no table row of the form | `recommender/<part>/` | … |"
    assert folders == packages, (
        f"docs/design.md lists {sorted(folders)}; recommender/ has the sub-packages {sorted(packages)}"
    )


@pytest.mark.parametrize(
    "part", ["cli", "web", "refresh", "ranking", "paths", "retrieval", "colour_map", "runs", "sample"]
)
def test_every_part_has_a_docstring_saying_what_lives_there(part: str) -> None:
    init = ROOT / "recommender" / part / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc, f"recommender/{part}/__init__.py should say in a docstring what lives in the folder"
