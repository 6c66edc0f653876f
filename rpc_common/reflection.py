"""gRPC server reflection that tells grpcurl what the contract says, for both services.

grpcio-reflection serves each file's descriptor as the Python runtime holds it, which has no comments, and
resolves only messages, enums and services. So `grpcurl describe vectorlane.store.v1.SearchRequest` showed no
field's meaning and `grpcurl describe vectorlane.store.v1.StorageService.Search` said "Symbol not found".
Here the contract's own files are served from `descriptors.binpb` (written by `make protos` with the source
info, so comments travel), and a method's name resolves to its service's file.
"""

from __future__ import annotations

from importlib import resources

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as pb

DESCRIPTORS = ("vectorlane_contract", "descriptors.binpb")


def _with_comments() -> dict[str, bytes]:
    """The contract's files as protoc wrote them, comments included, by file name."""
    package, name = DESCRIPTORS
    files = descriptor_pb2.FileDescriptorSet.FromString((resources.files(package) / name).read_bytes()).file
    for file in files:
        todo = list(file.message_type)
        while todo:  # without protoc's json_name, grpcurl keeps writing the fields' own names, as it always has
            message = todo.pop()
            for field in message.field:
                field.ClearField("json_name")
            todo.extend(message.nested_type)
    return {f.name: f.SerializeToString() for f in files}


class ContractReflection(reflection.ReflectionServicer):
    def __init__(self, service_names: tuple[str, ...]) -> None:
        super().__init__(service_names)
        self._pool = descriptor_pool.Default()
        self._commented = _with_comments()

    def _file_by_filename(self, request: pb.ServerReflectionRequest, filename: str) -> pb.ServerReflectionResponse:
        try:
            return self._answer(request, self._pool.FindFileByName(filename))
        except KeyError:
            return super()._file_by_filename(request, filename)

    def _file_containing_symbol(self, request: pb.ServerReflectionRequest, name: str) -> pb.ServerReflectionResponse:
        try:
            return self._answer(request, self._pool.FindFileContainingSymbol(name))
        except KeyError:
            pass
        service, _, method = name.rpartition(".")
        try:  # `package.Service.Method`: the service's file
            found = self._pool.FindServiceByName(service)
        except KeyError:
            return super()._file_containing_symbol(request, name)
        if method not in found.methods_by_name:
            return super()._file_containing_symbol(request, name)
        return self._answer(request, found.file)

    def _answer(self, request: pb.ServerReflectionRequest, found: descriptor_pool.FileDescriptor
                ) -> pb.ServerReflectionResponse:
        """The file and every file it imports, the contract's own with their comments."""
        files, todo = {}, [found]
        while todo:
            current = todo.pop()
            if current.name in files:
                continue
            files[current.name] = self._serialized(current)
            todo.extend(current.dependencies)
        return pb.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=pb.FileDescriptorResponse(file_descriptor_proto=list(files.values())))

    def _serialized(self, file: descriptor_pool.FileDescriptor) -> bytes:
        commented = self._commented.get(file.name)
        if commented is not None:
            return commented
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        return bytes(proto.SerializeToString())
