"""The production ManagedFileTransport: the supplier's (or the VAN's) SFTP server, with paramiko.

The same four boxes as the local drop folder (`outbound/`, `inbound/`, `archive/`, `quarantine/`) under a base
directory on the server. A write uploads to a temporary dot-file in the box and renames it over the final name
(`posix-rename` where the server offers it, else remove-then-rename), so the partner never picks up half a file.
The host key is verified against the given known-hosts entry: an unknown or changed key refuses the connection.
One SSH connection per transport, opened on first use and reopened after a failure.
"""

from __future__ import annotations

import base64
import io
import posixpath
import stat
import threading
import uuid
from dataclasses import dataclass

import paramiko

from adapters.supplier.dropfolder import BOXES, Box, safe_name


@dataclass(frozen=True)
class SftpSettings:
    host: str
    username: str
    known_host_key: str = ""  # "ssh-ed25519 AAAA..." as in known_hosts (type and key); required
    port: int = 22
    password: str | None = None
    private_key_pem: str | None = None
    base_dir: str = "."
    timeout: float = 30.0


class SftpDropFolder:
    def __init__(self, settings: SftpSettings) -> None:
        if not settings.known_host_key.strip():
            raise ValueError("an SFTP drop folder needs the server's host key (known_host_key): it is never trusted "
                             "on first use")
        self.settings = settings
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        s = self.settings
        client = paramiko.SSHClient()
        key_type, key_data = s.known_host_key.split()[:2]
        host_id = s.host if s.port == 22 else f"[{s.host}]:{s.port}"
        client.get_host_keys().add(host_id, key_type, paramiko.PKey.from_type_string(key_type,
                                                                                      _b64(key_data)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        pkey = _private_key(s.private_key_pem) if s.private_key_pem else None
        client.connect(s.host, port=s.port, username=s.username, password=s.password, pkey=pkey,
                       timeout=s.timeout, banner_timeout=s.timeout, auth_timeout=s.timeout, allow_agent=False,
                       look_for_keys=False)
        sftp = client.open_sftp()
        for box in BOXES:
            path = posixpath.join(s.base_dir, box)
            try:
                sftp.stat(path)
            except FileNotFoundError:
                sftp.mkdir(path)
        self._client, self._sftp = client, sftp
        return sftp

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = self._sftp = None

    def _path(self, box: Box, name: str) -> str:
        if box not in BOXES:
            raise ValueError(f"unknown box {box!r}")
        return posixpath.join(self.settings.base_dir, box, safe_name(name))

    def _run(self, fn):
        with self._lock:
            try:
                return fn(self._connect())
            except (OSError, paramiko.SSHException) as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                if self._client is not None:  # a broken connection: reopen on the next call
                    self._client.close()
                self._client = self._sftp = None
                raise

    def _replace(self, sftp: paramiko.SFTPClient, src: str, dst: str) -> None:
        try:
            sftp.posix_rename(src, dst)
        except OSError:
            try:
                sftp.remove(dst)
            except FileNotFoundError:
                pass
            sftp.rename(src, dst)

    def put(self, box: Box, name: str, data: bytes) -> None:
        final = self._path(box, name)
        tmp = posixpath.join(posixpath.dirname(final), f".{name}.{uuid.uuid4().hex}.tmp")

        def go(sftp: paramiko.SFTPClient) -> None:
            with sftp.open(tmp, "wb") as fh:
                fh.write(data)
            self._replace(sftp, tmp, final)

        self._run(go)

    def list(self, box: Box) -> list[str]:
        folder = posixpath.join(self.settings.base_dir, box)

        def go(sftp: paramiko.SFTPClient) -> list[str]:
            return sorted(a.filename for a in sftp.listdir_attr(folder)
                          if not a.filename.startswith(".") and stat.S_ISREG(a.st_mode or 0))

        return self._run(go)

    def get(self, box: Box, name: str) -> bytes:
        path = self._path(box, name)

        def go(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as fh:
                return fh.read()

        return self._run(go)

    def move(self, box: Box, name: str, to: Box, new_name: str | None = None) -> None:
        src, dst = self._path(box, name), self._path(to, new_name or name)
        self._run(lambda sftp: self._replace(sftp, src, dst))

    def remove(self, box: Box, name: str) -> None:
        path = self._path(box, name)

        def go(sftp: paramiko.SFTPClient) -> None:
            try:
                sftp.remove(path)
            except FileNotFoundError:
                pass

        self._run(go)


def _b64(data: str) -> bytes:
    return base64.b64decode(data)


def _private_key(pem: str) -> paramiko.PKey:
    last: Exception | None = None
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(pem))
        except (paramiko.SSHException, ValueError) as exc:
            last = exc
    raise ValueError(f"unreadable SFTP private key: {last}")
