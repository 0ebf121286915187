"""JSON Lines as bytes: big reads into one reused buffer, cut on b"\\n" only, in batches of whole lines.

Lines end at b"\\n" and nowhere else: U+2028, U+2029, U+0085, form feeds and lone carriage returns are
legal inside a JSON string and never start a new line (str.splitlines() would split on all of them).
A leading UTF-8 byte-order mark is dropped; a b"\\r" before the b"\\n" is JSON whitespace.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from azft_contract.formats import UTF8_BOM

__all__ = ["BATCH_SIZE", "CHUNK_SIZE", "FileInfo", "LineBatch", "iter_line_batches"]

# Large reads amortise the per-call cost; 8 MiB keeps the parsed objects of one chunk well under 100 MB.
CHUNK_SIZE = 8 << 20
# Lines are checked in batches of about this many bytes: small enough that the objects parsed from a
# batch are still in the CPU cache for the checks that follow (measured: 128 KiB beats 8 MiB by ~20%).
BATCH_SIZE = 128 << 10


@dataclass
class FileInfo:
    """File-level facts gathered while reading."""

    size: int = 0
    bom: bool = False
    lines: int = 0
    crlf_lines: int = 0
    final_newline: bool = True


class LineBatch:
    """Consecutive physical lines: `data[start:end]` holds `count` lines, each ending in b"\\n" (but the
    last line of a file without a final newline); `first_line` is 1-based.

    `data` is the reader's buffer, reused for the next chunk: use a batch before asking for the next.
    `lines` splits on demand, so a clean batch can be parsed in one call without per-line objects.
    """

    __slots__ = (
        "_lines",
        "count",
        "data",
        "end",
        "first_line",
        "first_offset",
        "has_cr",
        "start",
        "unterminated",
    )

    def __init__(
        self,
        first_line: int,
        first_offset: int,
        data: bytearray,
        start: int,
        end: int,
        count: int,
        has_cr: bool,
        unterminated: bool,
    ) -> None:
        self.first_line = first_line
        self.first_offset = first_offset  # byte offset of the first line in the file
        self.data = data
        self.start = start
        self.end = end
        self.count = count
        self.has_cr = has_cr  # some line ends with b"\r\n"
        self.unterminated = unterminated  # the last line of the file, with no b"\n" after it
        self._lines: list[bytes] | None = None

    @property
    def lines(self) -> list[bytes]:
        """The lines without their b"\\n", as bytes."""
        if self._lines is None:
            with memoryview(self.data) as view:
                text = view[self.start : self.end].tobytes()
            self._lines = [text] if self.unterminated else text.split(b"\n", self.count)[: self.count]
        return self._lines


def iter_line_batches(
    stream: io.BufferedIOBase,
    info: FileInfo,
    chunk_size: int = CHUNK_SIZE,
    batch_size: int = BATCH_SIZE,
) -> Iterator[LineBatch]:
    """Read big chunks into one reused buffer (no fresh allocation per read) and cut them into batches
    of whole lines of about `batch_size` bytes; memory is one chunk plus the longest line."""
    chunk_size = max(chunk_size, 64)  # the first read must hold a whole BOM
    buffer = bytearray(chunk_size)
    keep = 0  # bytes of an incomplete line carried over at the start of the buffer
    offset = 0
    line_no = 1
    first = True
    while True:
        if len(buffer) - keep < chunk_size:  # a line longer than a chunk: grow (a new buffer, never resized)
            grown = bytearray(keep + chunk_size)
            grown[:keep] = buffer[:keep]
            buffer = grown
        with memoryview(buffer) as view:
            got = stream.readinto(view[keep : keep + chunk_size])
        if not got:
            break
        total = keep + got
        if first:
            first = False
            if buffer.startswith(UTF8_BOM):
                info.bom = True
                buffer[: total - len(UTF8_BOM)] = buffer[len(UTF8_BOM) : total]
                total -= len(UTF8_BOM)
                offset = len(UTF8_BOM)
        end = buffer.rfind(b"\n", 0, total) + 1
        if not end:  # no complete line yet: keep reading
            keep = total
            continue
        start = 0
        while start < end:
            # Batches small enough that their parsed objects stay in the CPU cache between the checks.
            stop = (
                buffer.rfind(b"\n", start, min(start + batch_size, end)) + 1
                or buffer.find(b"\n", start, end) + 1
            )
            count = buffer.count(b"\n", start, stop)
            # `find` is a memchr; counting a two-byte pattern is several times slower, so only when needed.
            crlf = buffer.count(b"\r\n", start, stop) if buffer.find(b"\r", start, stop) >= 0 else 0
            info.crlf_lines += crlf
            info.lines += count
            yield LineBatch(line_no, offset, buffer, start, stop, count, crlf > 0, False)
            line_no += count
            offset += stop - start
            start = stop
        keep = total - end
        buffer[:keep] = buffer[end:total]
    if keep:
        info.final_newline = False
        info.lines += 1
        yield LineBatch(line_no, offset, buffer, 0, keep, 1, buffer[keep - 1 : keep] == b"\r", True)
