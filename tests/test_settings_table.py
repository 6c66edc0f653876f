"""The README's settings table is the one the settings classes make (scripts/settings_table.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_settings_table_is_current():
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    current = readme[readme.index(module.BEGIN) + len(module.BEGIN):readme.index(module.END)].strip()
    assert current == module.table(), "run: .venv/bin/python scripts/settings_table.py --write"
    for name in ("--auth-tokens", "--embed-auth-token", "--image-fetch-timeout-s", "--data-dir", "--preload"):
        assert f"`{name}`" in current
