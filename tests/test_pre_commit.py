"""The pre-commit hooks, for real: a throwaway repository whose commit is refused for a buggy model, then accepted;
in a repository with a PyTorch target, the hook that runs in the user's environment finds its bug and the ONNX-only
hook says which hook to use instead.

pre-commit builds an isolated hook's own environment from the hook repository (`pip install .[onnx]`), so those
tests need the package registry, and check what a user of the hook gets.
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
              pytest.mark.slow, pytest.mark.subprocess]
TORCH_TARGET = {
    "src/model.py": """
        import torch.nn as nn


        def build():
            return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1000))   # a leftover 1000-way head
    """,
    "pyproject.toml": """
        [[tool.shapecheck.targets]]
        target = "src/model.py:build"
        input = [4, 8]
        loss = "BCEWithLogitsLoss"
        labels = "4,1:float32"
    """,
}


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


@pytest.mark.network   # pre-commit pip-installs the hook's environment from PyPI
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


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    """This checkout's working tree, new files included, committed in a copy: the hooks as they will be released."""
    repo = tmp_path_factory.mktemp("hooks")
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():   # a tracked file deleted in the working tree is not released
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=dev@example.com", "-c", "user.name=Dev", "commit", "-q", "-m", "snapshot")
    return repo, git(repo, "rev-parse", "HEAD").stdout.strip()


def run_hook(tmp_path: Path, hook_repo: tuple[Path, str], hook: str) -> subprocess.CompletedProcess:
    """`pre-commit run --all-files` with one hook, in a new repository holding a PyTorch target."""
    project = tmp_path / "project"
    for name, text in TORCH_TARGET.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(textwrap.dedent(text).lstrip())
    (project / ".pre-commit-config.yaml").write_text(textwrap.dedent(f"""
        repos:
          - repo: {hook_repo[0]}
            rev: {hook_repo[1]}
            hooks:
              - id: {hook}
    """))
    git(project, "init", "-q")
    git(project, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return subprocess.run([PRE_COMMIT, "run", "--all-files"], cwd=project, env=env, capture_output=True, text=True)


def test_the_system_hook_checks_a_pytorch_target_in_the_users_environment(tmp_path, hook_repo):
    done = run_hook(tmp_path, hook_repo, "shapecheck-system")   # this venv, first on PATH, has torch
    assert done.returncode == 1, done.stdout + done.stderr
    assert "shapecheck (your environment)" in done.stdout and "Failed" in done.stdout
    assert "error[SC101] `BCEWithLogitsLoss` input from `model[2]` has shape [4, 1000]" in done.stdout


@pytest.mark.network   # pre-commit pip-installs the hook's environment from PyPI
def test_the_onnx_hook_names_the_hook_a_pytorch_target_needs(tmp_path, hook_repo):
    done = run_hook(tmp_path, hook_repo, "shapecheck")
    assert done.returncode == 1, done.stdout + done.stderr
    hint = ("shapecheck: src/model.py:build: `src/model.py` needs torch, which this hook's environment lacks: use the "
            "`shapecheck-torch` or `shapecheck-system` hook")
    assert hint in done.stdout.splitlines(), done.stdout
    assert "No module named" not in done.stdout
