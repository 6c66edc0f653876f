"""open_clip and transformers import on a CPU-only machine; a torchvision whose operators exist is untouched.

Each case runs in a fresh interpreter: what torchvision and torch register at import cannot be undone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_open_clip_and_transformers_import_after_the_fix():
    out = run("""
        from embed_service.torchvision_compat import ensure_torchvision_importable
        state = ensure_torchvision_importable()
        import open_clip, torchvision
        from torchvision import transforms
        from transformers import AutoTokenizer
        from sentence_transformers import SentenceTransformer
        assert ensure_torchvision_importable() == state  # idempotent
        print(state, torchvision.__version__)
    """)
    state, version = out.split()
    import torch

    if "+cu" in version and not torch.cuda.is_available():
        assert state == "shimmed"  # this machine's case: a CUDA torchvision over a CPU torch
    else:
        assert state in ("native", "shimmed")


def test_without_the_fix_this_machine_fails_to_import_torchvision():
    """Proves the fix is needed here (skipped where torchvision's extension loads)."""
    result = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True,
                            timeout=240)
    if result.returncode == 0:
        pytest.skip("torchvision's compiled extension loads on this machine")
    assert "torchvision::nms does not exist" in result.stderr


def test_operators_that_already_exist_are_left_alone():
    out = run("""
        import torch
        lib = torch.library.Library("torchvision", "DEF")  # stands in for a loaded extension
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        from embed_service import torchvision_compat
        print(torchvision_compat.ensure_torchvision_importable(), torchvision_compat._library is None)
    """)
    assert out == "native True"
