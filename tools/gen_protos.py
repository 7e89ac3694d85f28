"""Generate Python code from protos/ into geogit.common.proto.

protoc names modules after the .proto paths (geogit.storage.v1...), which would collide with
the geogit.storage service package; the generated tree is therefore placed under
geogit/common/proto/ and its imports are pointed there. Run by `make proto`; never edit the
output by hand.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "libs/common/src/geogit/common/proto"
IMPORT = re.compile(rb"^(from|import) geogit\.(storage|events)\.v1", re.MULTILINE)


def main() -> int:
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(sys.executable).parent
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *sources,
        ]
        subprocess.run(cmd, check=True)
        if OUT.exists():
            shutil.rmtree(OUT)
        shutil.copytree(Path(tmp) / "geogit", OUT)
    for path in OUT.rglob("*"):
        if path.is_dir():
            (path / "__init__.py").touch()
        elif path.suffix in (".py", ".pyi"):
            path.write_bytes(IMPORT.sub(rb"\1 geogit.common.proto.\2.v1", path.read_bytes()))
    (OUT / "__init__.py").write_text('"""Generated protobuf and gRPC code (make proto)."""\n')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
