"""A systematic hostile pass over both services (auth on), beyond the catalogue's one case per finding:

- every numeric field of every request, one level deep, at the extremes of its type (and NaN/infinities
  for floats), on an otherwise valid request;
- every string setting of every embedding function the service hosts, set to paths outside the model roots
  in several spellings.

Each answer must be OK or a documented status with an ErrorInfo, never INTERNAL or UNKNOWN (a failed
allocation of gigabytes, a crash) and both services keep serving. The earlier review found 8-80 GiB
allocations from single numeric fields; this is what would have caught them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor

from tests.bad_inputs import DOCS, PLAIN, Targets, embed_fn, json_rows, serving
from tests.helpers import error_info
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.store.v1 import store_service_pb2 as pb

NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
INTS = {FieldDescriptor.TYPE_INT32: (-2 ** 31, -1, 0, 1, 2 ** 31 - 1),
        FieldDescriptor.TYPE_INT64: (-2 ** 63, -1, 0, 1, 2 ** 31 - 1, 2 ** 63 - 1),
        FieldDescriptor.TYPE_UINT32: (0, 1, 2 ** 32 - 1), FieldDescriptor.TYPE_UINT64: (0, 1, 2 ** 64 - 1)}
FLOATS = (math.nan, math.inf, -math.inf, 1e308, -1e308, -0.0, 1e-45)
PATHS = ("/etc/passwd", ".venv/../../../../etc/passwd", "../../../../etc", "~/.ssh/id_rsa", "file:///etc/passwd",
         "/proc/self/environ", "//etc//passwd", "/dev/zero", "\x00", "hf-hub:someone/model", "someone/model")
STORE = pb.DESCRIPTOR.services_by_name["StorageService"]
EMBED = epb.DESCRIPTOR.services_by_name["EmbeddingService"]


@pytest.fixture(scope="module")
def targets(tmp_path_factory, tiny_clip) -> Iterator[Targets]:
    with serving(tmp_path_factory.mktemp("sweep"), tiny_clip) as found:
        # searches go through FAISS: IVF on the text table, HNSW on the vector table
        found.store.CreateIndex(pb.CreateIndexRequest(table=DOCS, index_type=pb.INDEX_TYPE_IVF_FLAT,
                                                      num_partitions=2))
        found.store.CreateIndex(pb.CreateIndexRequest(table=PLAIN, index_type=pb.INDEX_TYPE_HNSW))
        yield found


def base_requests(method, targets: Targets) -> list:
    """The base request, and for Search one per index kind (IVF by text, HNSW by vector)."""
    first = base_request(method, targets)
    if method.name != "Search":
        return [first]
    second = pb.SearchRequest(table=PLAIN, vector=pb.Vector(values=[0.0, 0.0, 1.0, 0.5]))
    return [first, second]


def base_request(method, targets: Targets):
    """A request of `method`'s type that would mostly be accepted, for one field at a time to go wrong in."""
    cls = message_factory.GetMessageClass(method.input_type)
    message = cls()
    fields = method.input_type.fields_by_name
    if "table" in fields:
        message.table = PLAIN if method.name in ("RestoreVersion",) else DOCS
    if method.name == "Search":
        message.text = "row 3"
    if method.name == "CreateIndex":
        message.index_type = pb.INDEX_TYPE_HNSW
        message.table = PLAIN
        message.replace = True
    if method.name in ("AddRows", "MergeInsert"):
        message.rows.CopyFrom(json_rows({"id": 900, "text": "a new row"}))
    if method.name == "MergeInsert":
        message.on.append("id")
        message.when_not_matched_insert_all = True
    if method.name in ("Embed", "StreamEmbed", "DescribeFunction") and "function" in fields:
        message.function.CopyFrom(targets.clip)
    if method.name in ("Embed", "StreamEmbed"):
        message.inputs.add(text="hello")
    return message


def numeric_paths(descriptor, prefix=()) -> Iterator[tuple[tuple[str, ...], FieldDescriptor]]:
    for field in descriptor.fields:
        if field.is_repeated:
            continue
        if field.type in INTS or field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            yield (*prefix, field.name), field
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not prefix and not field.message_type.GetOptions(
                ).map_entry and field.message_type.full_name.startswith("vectorlane."):
            yield from numeric_paths(field.message_type, (field.name,))


def extremes(field: FieldDescriptor) -> tuple:
    return INTS[field.type] if field.type in INTS else FLOATS


def send(targets: Targets, service, method, request) -> grpc.StatusCode:
    channel = targets.store_channel if service is STORE else targets.embed_channel
    token = "catalogue-store-token" if service is STORE else "catalogue-embed-token"
    path = f"/{service.full_name}/{method.name}"
    metadata = (("authorization", f"Bearer {token}"),)
    payload = request.SerializeToString()
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path)(iter([payload]), metadata=metadata, timeout=60))
        elif method.client_streaming:
            channel.stream_unary(path)(iter([payload]), metadata=metadata, timeout=60)
        else:
            channel.unary_unary(path)(payload, metadata=metadata, timeout=60)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, f"{method.name}: {exc.code().name}: {exc.details()}"
        if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or "message" not in exc.details():
            error_info(exc)  # every status the services choose carries its reason
        return exc.code()


def still_serving(targets: Targets) -> None:
    assert targets.store.CountRows(pb.CountRowsRequest(table=DOCS)).count > 0
    reply = targets.embed.Embed(epb.EmbedRequest(function=targets.clip, inputs=[epb.EmbedInput(text="still")]))
    assert len(reply.embeddings) == 1


@pytest.mark.parametrize("service,method", [(s, m) for s in (STORE, EMBED) for m in s.methods],
                         ids=lambda x: getattr(x, "name", ""))
def test_every_numeric_field_at_the_extremes_of_its_type(targets, service, method):
    sent = 0
    for path, field in numeric_paths(method.input_type):
        for value, base in ((v, b) for v in extremes(field) for b in base_requests(method, targets)):
            request = type(base)()
            request.CopyFrom(base)
            holder = request
            for name in path[:-1]:
                holder = getattr(holder, name)
            setattr(holder, path[-1], value)
            send(targets, service, method, request)
            sent += 1
    still_serving(targets)
    assert sent or not list(numeric_paths(method.input_type))


def test_every_string_setting_of_every_function_set_to_paths_outside_the_roots(targets):
    listed = targets.embed.ListFunctions(epb.ListFunctionsRequest())
    tried = 0
    for function in listed.functions:
        properties = json_format.MessageToDict(function.settings_schema)["properties"]
        strings = [name for name, schema in properties.items()
                   if schema.get("type") == "string" or any(o.get("type") == "string" for o in schema.get("anyOf", []))]
        for setting in strings:
            for value in PATHS:
                settings = {"max_retries": 0, setting: value}
                if "device" in properties and setting != "device":
                    settings["device"] = "cpu"
                if function.name == "openai" and setting != "base_url":
                    settings.update(base_url="http://127.0.0.1:9/v1", timeout=2)
                request = epb.EmbedRequest(function=embed_fn(function.name, **settings),
                                           inputs=[epb.EmbedInput(text="x")])
                code = send(targets, EMBED, EMBED.methods_by_name["Embed"], request)
                if function.name in ("open-clip", "sentence-transformers") and setting in ("name", "pretrained"):
                    assert code != grpc.StatusCode.OK, (function.name, setting, value)  # nothing loads from there
                tried += 1
    assert tried >= 50
    still_serving(targets)
