"""The pytest plugin, run with pytester: the `shapecheck` fixture and `pytest --shapecheck` items."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# every test runs pytest in a child process (runpytest_subprocess); those that check a model there are slow
pytestmark = pytest.mark.subprocess

MODEL = textwrap.dedent("""
    import torch
    from torch import nn


    def build_classifier(outputs=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(12, outputs))
""")


@pytest.mark.slow
def test_fixture_reports_findings_without_a_traceback(pytester):
    pytester.makepyfile(models=MODEL, test_models=textwrap.dedent("""
        import torch
        from torch import nn
        from models import build_classifier


        def test_binary_head(shapecheck):
            shapecheck(build_classifier(), input=(4, 3, 2, 2), loss=nn.BCEWithLogitsLoss(), labels=torch.zeros(4, 1))


        def test_fixed_head(shapecheck):
            shapecheck(build_classifier(1), input=(4, 3, 2, 2), loss=nn.BCEWithLogitsLoss(), labels=torch.zeros(4, 1))


        def test_labels_as_spec(shapecheck):
            report = shapecheck(build_classifier(), input="4,3,2,2", loss="CrossEntropyLoss", labels="4")
            assert report.ok and report.results[0].trace.output.shape == (4, 10)
    """))
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=2, failed=1)
    outcome.stdout.fnmatch_lines([
        "*error[[]SC101[]] `BCEWithLogitsLoss` input from `model[[]1[]]` has shape [[]4, 10[]]; labels have shape [[]4, 1[]]*",
        "*help (verified): Replace the head with 1 output: `model[[]1[]] = nn.Linear(model[[]1[]].in_features, 1)`",
    ])
    assert "Traceback" not in outcome.stdout.str()


@pytest.mark.slow
def test_option_collects_configured_targets_as_items(pytester):
    pytester.makepyfile(models=MODEL + textwrap.dedent("""

        def binary():
            return build_classifier(1)
    """))
    pytester.makepyprojecttoml(textwrap.dedent("""
        [tool.shapecheck]
        ignore = ["SC207"]

        [[tool.shapecheck.targets]]
        target = "models.py:build_classifier"
        input = [4, 3, 2, 2]
        loss = "BCEWithLogitsLoss"
        labels = "4,1:float32"

        [[tool.shapecheck.targets]]
        target = "models.py:binary"
        input = "4,3,2,2"
        loss = "BCEWithLogitsLoss"
        labels = "4,1:float32"
    """))
    outcome = pytester.runpytest_subprocess("--shapecheck", "-p", "no:cacheprovider", "-v")
    outcome.assert_outcomes(passed=1, failed=1)
    outcome.stdout.fnmatch_lines(["pyproject.toml::models.py:build_classifier FAILED*",
                                  "pyproject.toml::models.py:binary PASSED*",
                                  "*error[[]SC101[]]*",
                                  "FAILED pyproject.toml::models.py:build_classifier - *"])
    assert "Traceback" not in outcome.stdout.str()

    rerun = pytester.runpytest_subprocess("--shapecheck", "-p", "no:cacheprovider", "-v",
                                          "pyproject.toml::models.py:binary")
    rerun.assert_outcomes(passed=1)
    pytester.runpytest_subprocess("--shapecheck", "-p", "no:cacheprovider", "-k", "binary").assert_outcomes(
        passed=1, deselected=1)


@pytest.mark.slow
def test_targets_run_when_pyproject_is_outside_the_collected_paths(pytester):
    pytester.makepyfile(models=MODEL)
    pytester.makepyprojecttoml(textwrap.dedent("""
        [tool.pytest.ini_options]
        testpaths = ["tests"]

        [[tool.shapecheck.targets]]
        target = "models.py:build_classifier"
        input = [4, 3, 2, 2]
        loss = "CrossEntropyLoss"
        labels = "4"
    """))
    pytester.mkdir("tests").joinpath("test_unit.py").write_text("def test_ok():\n    pass\n")
    outcome = pytester.runpytest_subprocess("--shapecheck", "-p", "no:cacheprovider", "-v")
    outcome.assert_outcomes(passed=2)
    outcome.stdout.fnmatch_lines(["pyproject.toml::models.py:build_classifier PASSED*"])


def test_without_the_option_no_items_are_added(pytester):
    pytester.makepyprojecttoml('[[tool.shapecheck.targets]]\ntarget = "models.py:x"\n')
    pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_bad_configuration_is_a_usage_error(pytester):
    pytester.makepyprojecttoml('[tool.shapecheck]\nselct = ["SC1"]\n')
    outcome = pytester.runpytest_subprocess("--shapecheck", "-p", "no:cacheprovider")
    assert outcome.ret == 4
    outcome.stderr.fnmatch_lines(["*pyproject.toml:2: `selct` is not a shapecheck setting*"])


@pytest.mark.slow
def test_a_configured_pickled_module_loads_only_with_shapecheck_trust(pytester):
    # saved by another process: pytester drops modules a test imports, and torch cannot be imported twice
    subprocess.run([sys.executable, "-c", "import sys, torch; torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), "
                    "sys.argv[1])", str(pytester.path / "model.pt")], check=True)
    pytester.makepyprojecttoml(textwrap.dedent("""
        [[tool.shapecheck.targets]]
        target = "model.pt"
        input = [2, 4]
    """))
    refused = pytester.runpytest_subprocess("--shapecheck", "-p", "no:cacheprovider")
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*holds a pickled `torch.nn.modules.container.Sequential`*--shapecheck-trust*"])
    trusted = pytester.runpytest_subprocess("--shapecheck", "--shapecheck-trust", "-p", "no:cacheprovider")
    trusted.assert_outcomes(passed=1)
