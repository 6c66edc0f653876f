"""Runs one measurement in a fresh process: `python -m benchmarks.worker module:function '<json kwargs>' FILE`
calls `benchmarks.<module>.<function>(**kwargs)` and writes what it returns to FILE as JSON."""

import importlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    target, kwargs, result_file = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    module, function = target.split(":")
    result = getattr(importlib.import_module(f"benchmarks.{module}"), function)(**kwargs)
    result_file.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
