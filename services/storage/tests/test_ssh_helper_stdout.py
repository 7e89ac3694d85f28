"""The git-ssh helper's stdout: everything written reaches the reader, even a slow one.

`drain()` returns while up to the high-water mark (64 KiB) is still buffered in the asyncio
pipe transport; a helper that exits then loses those bytes, and git reports "unexpected
disconnect while reading sideband packet" at the end of a clone.
"""

from __future__ import annotations

import subprocess
import sys
import time

PIPE_CAPACITY = 64 * 1024
WRITER = """
import asyncio
from geogit.storage.ssh_helper import StdoutPipe

async def main():
    stdout = await StdoutPipe.open()
    await stdout.write(b"a" * 65536)  # fills the pipe
    await stdout.write(b"b" * 32768)  # stays in the transport's buffer, under the high-water mark
    await stdout.flush()

asyncio.run(main())
"""


def test_every_byte_reaches_a_slow_reader() -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE)
    assert writer.stdout is not None
    time.sleep(1.0)  # the reader is slow: nothing is read until the writer is done writing
    data = writer.stdout.read()
    assert writer.wait(30) == 0
    assert data == b"a" * PIPE_CAPACITY + b"b" * 32768
