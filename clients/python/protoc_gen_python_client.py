"""The protoc plugin `make generate` runs for the Python client: grpcio-tools'
own protoc writes the messages (`_pb2.py`), their stubs (`_pb2.pyi`) and the
gRPC stubs (`_pb2_grpc.py`, for files that declare a service).

grpcio-tools builds those generators into its protoc rather than shipping
`protoc-gen-*` executables, so buf reaches them through this plugin: the
request's descriptors go to grpc_tools.protoc and the files it writes come
back as the response. The google.api and google.rpc files are left out:
googleapis-common-protos, which grpcio-status depends on, already ships them.
"""

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    ours = [name for name in request.file_to_generate if not name.startswith("google/")]
    with_services = {file.name for file in request.proto_file if file.name in ours and file.service}
    with tempfile.TemporaryDirectory() as work:
        descriptors = Path(work) / "descriptors.bin"
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = Path(work) / "out"
        out.mkdir()
        status = protoc.main(["protoc", f"--descriptor_set_in={descriptors}", f"--python_out={out}",
                              f"--pyi_out={out}", f"--grpc_python_out={out}", *ours]) if ours else 0
        if status != 0:
            response.error = f"grpc_tools.protoc failed with status {status}"
        for path in sorted(out.rglob("*.py*")) if status == 0 else []:
            name = str(path.relative_to(out))
            if name.endswith("_pb2_grpc.py") and name.replace("_pb2_grpc.py", ".proto") not in with_services:
                continue
            response.file.add(name=name, content=path.read_text())
    sys.stdout.buffer.write(response.SerializeToString())


if __name__ == "__main__":
    main()
