"""The layer order is enforced: `lint-imports` (run by CI) passes on the tree as it is and
fails as soon as a package imports one above it, or a service imports DRF."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["raptorflow", "accounts", "billing", "conversations", "search", "documents", "rag"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def tree(tmp_path):
    """A copy of the project's packages and contracts, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def add_import(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_project_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tree):
    assert lint_imports(tree).returncode == 0

    add_import(tree / "accounts" / "selectors.py", "from conversations.models import Message  # noqa")

    result = lint_imports(tree)
    assert result.returncode != 0
    assert "accounts.selectors -> conversations.models" in result.stdout


def test_search_importing_documents_breaks_the_layers(tree):
    add_import(tree / "search" / "selectors.py", "from documents.models import DocumentChunk  # noqa")

    result = lint_imports(tree)
    assert result.returncode != 0
    assert "search.selectors -> documents.models" in result.stdout


def test_core_importing_an_app_breaks_the_layers(tree):
    add_import(tree / "raptorflow" / "jobs.py", "import accounts.models  # noqa")

    result = lint_imports(tree)
    assert result.returncode != 0
    assert "raptorflow.jobs -> accounts.models" in result.stdout


def test_a_service_importing_drf_breaks_the_contract(tree):
    add_import(tree / "conversations" / "services.py", "from rest_framework.exceptions import NotFound  # noqa")

    result = lint_imports(tree)
    assert result.returncode != 0
    assert "Services and selectors know nothing of HTTP" in result.stdout
    assert "BROKEN" in result.stdout


def test_the_job_runner_importing_the_metrics_view_breaks_the_core_order(tree):
    add_import(tree / "raptorflow" / "metrics.py", "from raptorflow import jobs  # noqa")

    result = lint_imports(tree)
    assert result.returncode != 0
    assert "raptorflow.metrics -> raptorflow.jobs" in result.stdout
