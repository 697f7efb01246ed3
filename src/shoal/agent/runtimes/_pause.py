"""The sandbox image: a one-file image whose only program sleeps until it is killed.

A pod's sandbox container holds the network namespace its containers join (Kubernetes' pause
container). There is no registry to pull one from, so the agent builds it: a 129-byte static
x86-64 ELF that calls pause(2) in a loop, packed as a ``docker save`` archive that the engine
loads (``POST /images/load``) without any network. Other architectures must name a sandbox
image of their own (``--sandbox-image``).
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import struct
import tarfile

PAUSE_IMAGE = "shoal/pause:1"

_BASE = 0x400000  # where the kernel maps the file
_EHDR_SIZE, _PHDR_SIZE = 64, 56
# loop: mov eax, 34 (pause); syscall; jmp loop
_CODE = bytes.fromhex("b8220000000f05ebf7")


def pause_elf() -> bytes:
    """A static ELF64 executable for x86-64: one PT_LOAD segment holding headers and code."""
    size = _EHDR_SIZE + _PHDR_SIZE + len(_CODE)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, SysV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        0x3E,  # EM_X86_64
        1,  # EV_CURRENT
        _BASE + _EHDR_SIZE + _PHDR_SIZE,  # entry: the code after the headers
        _EHDR_SIZE,  # program headers right after this one
        0,  # no section headers
        0,
        _EHDR_SIZE,
        _PHDR_SIZE,
        1,
        0,
        0,
        0,
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return header + segment + _CODE


def supported() -> bool:
    return platform.machine() in {"x86_64", "AMD64"}


def _tar(members: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def image_archive(tag: str = PAUSE_IMAGE) -> bytes:
    """The image in ``docker save`` form: one layer with /pause, a config, a manifest."""
    layer = _tar({"pause": (pause_elf(), 0o755)})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "Labels": {"shoal.io/sandbox-image": "true"}},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
            "history": [{"created_by": "shoal agent: pause loop"}],
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}])
    return _tar(
        {
            "layer/layer.tar": (layer, 0o644),
            config_name: (config, 0o644),
            "manifest.json": (manifest.encode(), 0o644),
        }
    )
