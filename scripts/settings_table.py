"""The README's table of every setting of both services, made from their settings dataclasses.

    .venv/bin/python scripts/settings_table.py           # print it
    .venv/bin/python scripts/settings_table.py --write   # put it in README.md between its markers

tests/test_settings_table.py fails when the README's copy differs, so the table is never stale.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from embed_service.config import EmbedConfig
from rpc_common.settings import ENV_PREFIX
from store_service.config import StoreConfig

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def _default(value: object) -> str:
    if value in ((), None, ""):
        return "–"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def table() -> str:
    lines = ["| setting | embed | store | default | meaning |", "| --- | --- | --- | --- | --- |"]
    embed = {f.name: f for f in dataclasses.fields(EmbedConfig)}
    store = {f.name: f for f in dataclasses.fields(StoreConfig)}
    for name in list(embed) + [n for n in store if n not in embed]:
        field = embed.get(name) or store[name]
        defaults = {_default(f.default) for f in (embed.get(name), store.get(name)) if f is not None}
        flag, env = "--" + name.replace("_", "-"), ENV_PREFIX + name.upper()
        meaning = field.metadata["help"].replace("|", "\\|") + (" (secret)" if field.metadata.get("secret") else "")
        lines.append(f"| `{flag}` `{env}` | {'✓' if name in embed else ''} | {'✓' if name in store else ''} | "
                     f"{' / '.join(sorted(defaults))} | {meaning} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    if not args.write:
        print(table())
        return
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + "\n" + table() + "\n" + text[end:])


if __name__ == "__main__":
    main()
