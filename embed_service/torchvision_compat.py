"""Make `import torchvision` work when its compiled extension cannot load.

On the CPU-only machines this project is built on, torch is a CPU build while the only torchvision wheel
is a CUDA build: its `_C.so` fails to load, torchvision's import then registers fake kernels for
`torchvision::nms`, which does not exist, and the import (and with it `open_clip` and model loading in
`transformers`) dies with "operator torchvision::nms does not exist".

`ensure_torchvision_importable()` must run before torchvision is first imported. It does nothing when the
operator is already there or the extension loads (a real CPU or CUDA torchvision is untouched). Only when
loading fails does it declare the two operator schemas torchvision's import needs, without kernels: the
transforms open_clip uses work; `torchvision.ops.nms` itself would raise (nothing here calls it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_state: str | None = None
_library = None  # keeps the torch.library.Library alive; the schemas vanish with it


def _has_nms() -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision_importable() -> str:
    """Returns how torchvision's operators are provided: "native", "shimmed" or "absent"."""
    global _state, _library
    with _lock:
        if _state is not None:
            return _state
        spec = importlib.util.find_spec("torchvision")
        if spec is None or spec.origin is None:
            _state = "absent"
            return _state
        import torch

        if _has_nms():
            _state = "native"
            return _state
        extension = os.path.join(os.path.dirname(spec.origin), "_C.so")
        try:
            torch.ops.load_library(extension)
        except (OSError, RuntimeError) as exc:
            log.info("torchvision's compiled extension does not load (%s); declaring its operator "
                     "schemas so torchvision imports without it", str(exc).splitlines()[0][:200])
        if _has_nms():
            _state = "native"
            return _state
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _library = library
        _state = "shimmed"
        return _state
