"""The README's module map ("How it works") stays true to the tree."""

from __future__ import annotations

import re

from rule_fixtures import ROOT

PACKAGE = ROOT / "shapecheck"


def _module_map() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How it works", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("| "))
    return set(re.findall(r"`([\w/]+(?:\.py|/))`", table))


def test_every_module_is_in_the_module_map():
    named = _module_map()

    def listed(module: str) -> bool:   # by its path, or by a folder that holds it
        parts = module.split("/")
        return module in named or any("/".join(parts[:i]) + "/" in named for i in range(1, len(parts)))

    modules = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py"))
    assert not [module for module in modules if not listed(module)]


def test_the_module_map_names_only_modules_that_exist():
    missing = [name for name in _module_map()
               if not (PACKAGE / name).exists() and not any(PACKAGE.rglob(name.rstrip("/")))]
    assert not missing
