"""The pre-commit hook, for real: a throwaway repository whose commit is refused for a buggy model, then accepted.

pre-commit builds the hook's own environment from this repository's committed HEAD (`pip install .[onnx]`), so
the test needs the package registry, and checks what a user of the hook gets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures" / "onnx" / "rules"))

PRE_COMMIT = shutil.which("pre-commit") or str(Path(sys.executable).parent / "pre-commit")
pytestmark = [pytest.mark.skipif(not (ROOT / ".git").exists(), reason="the hook is installed from this git checkout"),
              pytest.mark.slow, pytest.mark.subprocess, pytest.mark.network]   # pre-commit pip-installs from PyPI


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def test_commit_is_refused_for_a_buggy_model_then_accepted(tmp_path):
    import onnx
    from graphs import classifier

    head = git(ROOT, "rev-parse", "HEAD").stdout.strip()
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / ".pre-commit-config.yaml").write_text(textwrap.dedent(f"""
        repos:
          - repo: {ROOT}
            rev: {head}
            hooks:
              - id: shapecheck
    """))
    (repo / "pyproject.toml").write_text(textwrap.dedent("""
        [[tool.shapecheck.targets]]
        target = "model.onnx"
        input = [4, 3, 8, 8]
        loss = "BCEWithLogitsLoss"
        labels = "4,1:float32"
    """))
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache")}
    subprocess.run([PRE_COMMIT, "install"], cwd=repo, env=env, check=True, capture_output=True)

    onnx.save(classifier(classes=1000), repo / "model.onnx")     # the ImageNet head exported by mistake
    git(repo, "add", "-A")
    refused = subprocess.run(["git", "commit", "-m", "add model"], cwd=repo, env=env, capture_output=True, text=True)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "error[SC101] `BCEWithLogitsLoss` input from `fc` has shape [4, 1000]" in refused.stdout + refused.stderr

    onnx.save(classifier(classes=1), repo / "model.onnx")
    git(repo, "add", "-A")
    accepted = subprocess.run(["git", "commit", "-m", "add model"], cwd=repo, env=env, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    hook_output = accepted.stdout + accepted.stderr   # git prints the hook's report on stderr
    assert "shapecheck (ONNX)" in hook_output and "Passed" in hook_output
