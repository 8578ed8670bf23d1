"""pytest plugin: a `shapecheck` fixture for tests users write, and `pytest --shapecheck` to collect every target
configured in pyproject.toml as a test item (like pytest-mypy). Failures print the findings, not a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from shapecheck import config as config_mod
from shapecheck import pipeline, render
from shapecheck.errors import ShapecheckError
from shapecheck.request import Flags, plan

PLANNED = pytest.StashKey["Planned"]()


@dataclass
class Planned:
    pyproject: Path
    requests: list      # a Request per target, as `shapecheck check` plans them


def pytest_configure(config):
    config.addinivalue_line("markers", "shapecheck: a model target checked by shapecheck (pytest --shapecheck)")
    if config.getoption("shapecheck"):
        config.stash[PLANNED] = _plan(config.rootpath, config.getoption("shapecheck_trust"))


def _plan(rootpath: Path, trust: bool) -> Planned:
    """Read the configured targets up front: a bad configuration is a usage error, not a failing item. Model
    files that hold code (pickled modules, Keras Lambda layers) load only with --shapecheck-trust, as with the CLI's
    --trust: the configuration alone, which a pull request can change, cannot allow them."""
    try:
        project = config_mod.load(config_mod.find_pyproject(rootpath))
        return Planned(project.path, plan([], Flags(trust=trust), project))
    except ShapecheckError as exc:
        raise pytest.UsageError(f"shapecheck: {exc}") from exc


def pytest_addoption(parser):
    group = parser.getgroup("shapecheck", "shape-mismatch checks of deep-learning models")
    group.addoption("--shapecheck", action="store_true", help="check the targets in [tool.shapecheck] as test items")
    group.addoption("--shapecheck-trust", action="store_true",
                    help="load model files that hold code (pickled PyTorch modules, Keras Lambda layers)")


class ShapecheckFailure(Exception):
    """The rendered findings of a failed check."""


class Checker:
    """`shapecheck(model, input=(16, 3, 224, 224), loss=nn.BCEWithLogitsLoss(), labels=torch.zeros(16, 1))`: the
    Python API's `shapecheck.check`, failing the test when the report has an error."""

    def __call__(self, model, input=None, loss=None, labels=None, **options):
        from shapecheck.python_api import check

        report = check(model, input, loss, labels, **options)
        if not report.ok:
            pytest.fail(str(report), pytrace=False)
        return report


@pytest.fixture
def shapecheck():
    return Checker()


def pytest_collect_file(file_path, parent):
    """pyproject.toml holds the targets: its items are `pyproject.toml::<target>`, selectable like any node id."""
    planned = parent.config.stash.get(PLANNED, None)
    if planned is not None and file_path == planned.pyproject:
        return ShapecheckTargets.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)   # before `-k`/`-m` deselection, so the added items are filtered like the rest
def pytest_collection_modifyitems(session, config, items):
    """Every configured target runs with --shapecheck, also when pyproject.toml is outside the collected paths."""
    planned = config.stash.get(PLANNED, None)
    if planned is not None and not any(isinstance(item, ShapecheckItem) for item in items):
        items.extend(ShapecheckTargets.from_parent(session, path=planned.pyproject).collect())


class ShapecheckTargets(pytest.File):
    def collect(self):
        for request in self.config.stash[PLANNED].requests:
            yield ShapecheckItem.from_parent(self, name=request.target, request=request)


class ShapecheckItem(pytest.Item):
    def __init__(self, *, request, **kwargs):
        super().__init__(**kwargs)
        self.request = request
        self.add_marker("shapecheck")

    def runtest(self):
        result = pipeline.run(self.request)
        if result.error or result.has_errors:
            raise ShapecheckFailure(render.to_text([result]))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ShapecheckFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"shapecheck {self.request.target}"
