"""The generated gRPC code in coderunner/proto/ is what `make proto` makes of proto/ today."""

from __future__ import annotations

from pathlib import Path

from coderunner.proto.codegen import OUT_ROOT, PROTO_ROOT, generate


def test_generated_code_is_current(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert fresh, f"no .proto file under {PROTO_ROOT}"
    stale = []
    for path in fresh:
        committed = OUT_ROOT / path.relative_to(tmp_path)
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(committed.relative_to(OUT_ROOT.parent.parent)))
    assert not stale, f"generated code is stale, run `make proto`: {', '.join(stale)}"


def test_generated_code_imports_from_its_package() -> None:
    from coderunner.proto.coderunner.v1 import coderunner_pb2, coderunner_pb2_grpc

    assert coderunner_pb2.DESCRIPTOR.package == "coderunner.v1"
    assert "CodeRunner" in coderunner_pb2.DESCRIPTOR.services_by_name
    assert hasattr(coderunner_pb2_grpc, "CodeRunnerServicer")
