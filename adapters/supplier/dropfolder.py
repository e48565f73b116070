"""The managed-file transport between us and a supplier: four boxes, `outbound/` (what we send; the supplier
picks it up), `inbound/` (what the supplier leaves for us), `archive/` (inbound files we have processed) and
`quarantine/` (malformed inbound files, each with a `.error.json` naming the segment and position).

`LocalDropFolder` is the embedded stack's: a directory on disk, every write atomic (a temporary dot-file in the
same box, fsynced, then `os.replace`), so a reader never sees half a file. Production plugs `SftpDropFolder`
(adapters/supplier/sftp.py, paramiko) into the same `ManagedFileTransport` protocol: the same four boxes on the
partner's server, each upload to a temporary name then renamed, which is how SFTP offers atomicity.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

Box = Literal["outbound", "inbound", "archive", "quarantine"]
BOXES: tuple[Box, ...] = ("outbound", "inbound", "archive", "quarantine")


@runtime_checkable
class ManagedFileTransport(Protocol):
    def put(self, box: Box, name: str, data: bytes) -> None:
        """Write `name` into `box` atomically (readers see the whole file or none); replaces an existing one."""

    def list(self, box: Box) -> list[str]:
        """The complete files in `box`, sorted by name (temporary files being written are left out)."""

    def get(self, box: Box, name: str) -> bytes:
        """The bytes of `name` in `box`; FileNotFoundError when it is not there."""

    def move(self, box: Box, name: str, to: Box, new_name: str | None = None) -> None:
        """Move a file between boxes atomically."""

    def remove(self, box: Box, name: str) -> None:
        """Delete `name` from `box` (missing is fine)."""


def safe_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"{name!r} is not a plain file name")
    return name


class LocalDropFolder:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for box in BOXES:
            (self.root / box).mkdir(parents=True, exist_ok=True)

    def path(self, box: Box, name: str) -> Path:
        if box not in BOXES:
            raise ValueError(f"unknown box {box!r}")
        return self.root / box / safe_name(name)

    def put(self, box: Box, name: str, data: bytes) -> None:
        final = self.path(box, name)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)

    def list(self, box: Box) -> list[str]:
        folder = self.root / box
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def get(self, box: Box, name: str) -> bytes:
        return self.path(box, name).read_bytes()

    def move(self, box: Box, name: str, to: Box, new_name: str | None = None) -> None:
        os.replace(self.path(box, name), self.path(to, new_name or name))

    def remove(self, box: Box, name: str) -> None:
        self.path(box, name).unlink(missing_ok=True)
