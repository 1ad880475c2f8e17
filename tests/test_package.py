"""The package declares what it imports (pyproject.toml's dependencies are exactly the third-party
distributions its modules import), and its floors hold: import-linter's layers contract passes, names
every module of visarch, and fails when a lower floor imports a higher one."""

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (the test extra installs it)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "visarch"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def imported_top_level_names():
    """Every top-level module name that a module of visarch imports, at any depth of its code."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def normalise(distribution):
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_the_declared_dependencies_are_the_imported_distributions():
    third_party = imported_top_level_names() - set(sys.stdlib_module_names) - {"visarch", "__future__"}
    distributions = importlib.metadata.packages_distributions()
    imported = {normalise(distributions[name][0]) for name in third_party}
    declared = {normalise(re.split(r"[<>=!~;\[ ]", requirement)[0])
                for requirement in PYPROJECT["project"]["dependencies"]}
    assert imported <= declared, f"imported but not declared in pyproject.toml: {sorted(imported - declared)}"
    assert declared <= imported, f"declared in pyproject.toml but never imported: {sorted(declared - imported)}"


def contract_modules():
    (contract,) = PYPROJECT["tool"]["importlinter"]["contracts"]
    return {name.strip() for layer in contract["layers"] for name in layer.split("|")}


def test_the_contract_places_every_module():
    modules = {f"visarch.{path.stem if path.is_file() else path.name}" for path in PACKAGE.iterdir()
               if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()}
    assert contract_modules() == modules


def lint_imports(cwd, pythonpath):
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "", "PYTHONPATH": str(pythonpath), "HOME": str(cwd)})


def test_no_module_imports_a_higher_floor():
    result = lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "src" / "visarch", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    checks = tmp_path / "src" / "visarch" / "checks.py"
    checks.write_text(checks.read_text() + "\nfrom visarch.models import vit  # noqa: E402\n")
    result = lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0 and "visarch.checks -> visarch.models.vit" in result.stdout, result.stdout
