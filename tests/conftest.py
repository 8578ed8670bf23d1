import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # test helpers (rule_fixtures, corpus) import by name

pytest_plugins = ["pytester"]
