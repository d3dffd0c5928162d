"""A kernel's own build options, read from the kernel file itself (CONFIG_IKCONFIG), so that a
stack naming a kernel without ESP in TCP is refused before anything is created.

A bzImage is a boot header, then the compressed kernel (its offset and length in the header,
Documentation/arch/x86/boot.rst); with CONFIG_IKCONFIG the kernel holds its .config gzipped
between the markers IKCFG_ST and IKCFG_ED (scripts/extract-ikconfig does the same by search).
"""
from __future__ import annotations

import functools
import gzip
import lzma
import os
import struct
import zlib

_MAGIC = b"HdrS"  # the boot protocol's header signature, at 0x202
_START, _END = b"IKCFG_ST", b"IKCFG_ED"


class NoConfig(Exception):
    """The file is no kernel this module can read, or was built without CONFIG_IKCONFIG."""


def kernel_options(path: str) -> dict[str, str]:
    """CONFIG_* name -> value ("y", "m", a number or a quoted string) of the kernel at path."""
    stat = os.stat(path)
    return dict(_options(path, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _options(path: str, _size: int, _mtime: int) -> tuple[tuple[str, str], ...]:
    with open(path, "rb") as kernel:
        image = kernel.read()
    text = config_text(decompress(image))
    pairs = (line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_") and "=" in line)
    return tuple((name, value) for name, value in pairs)


def decompress(image: bytes) -> bytes:
    """The kernel inside a bzImage (gzip or xz, the two the standard library reads)."""
    if image[0x202:0x206] != _MAGIC:
        raise NoConfig("it is not a bzImage (no boot header)")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start:start + length]
    try:
        if payload.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(wbits=31).decompress(payload)
        if payload.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMADecompressor().decompress(payload)
    except (zlib.error, lzma.LZMAError) as error:
        raise NoConfig(f"its compressed kernel is damaged ({error})") from None
    raise NoConfig("its kernel is compressed with neither gzip nor xz (CONFIG_KERNEL_GZIP or _XZ)")


def config_text(kernel: bytes) -> str:
    """The .config embedded in a decompressed kernel."""
    start = kernel.find(_START)
    end = kernel.find(_END, start)
    if start < 0 or end < 0:
        raise NoConfig("it was built without CONFIG_IKCONFIG, which embeds its config")
    try:
        return gzip.decompress(kernel[start + len(_START):end]).decode()
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise NoConfig(f"its embedded config is damaged ({error})") from None
