"""The embedded S3 server's objects kept on disk, so that `make dev` restarted (or its S3 server killed)
finds every object it had: the catalog's identity of an asset is bucket + key + ETag, and the job
outputs' links point at objects too.

Layout under the store's root (``.mpr/s3``)::

    <bucket>/bucket.json     {"name": ..., "region": ...}
    <bucket>/<sha256(key)>.obj

An ``.obj`` file is ``MAGIC``, an 8-byte big-endian header length, the JSON header (key, ETag,
Last-Modified, metadata with the content type, storage class, checksum) and the object's bytes. Every
file is written to a temporary name in the same directory and renamed over the old one, so a process
killed at any moment (kill -9, OOM) leaves either the old or the new version, never a torn one;
temporary files left behind are removed at the next load. (No fsync: a power cut may lose the last
writes, which a development stack can afford.)

Kept: object bytes, ETag, Last-Modified, content type and user metadata, storage class, checksum.
Not kept: in-progress multipart uploads, object versions (only the latest), tags and ACLs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

MAGIC = b"MPR-S3-OBJECT-1\n"
_LEN = struct.Struct(">Q")
_TMP_PREFIX = ".tmp-"
_BUCKET_META = "bucket.json"
_SUFFIX = ".obj"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{2,62}")


@dataclass
class StoredObject:
    bucket: str
    key: str
    etag: str  # as S3 answers it, with its quotes
    last_modified: datetime
    body: bytes
    metadata: dict[str, str] = field(default_factory=dict)  # content type and x-amz-meta-* as moto keeps them
    storage_class: str = "STANDARD"
    checksum: dict[str, str | int | None] = field(default_factory=dict)

    def stamp(self) -> tuple:
        """What changes whenever the object is written again (skips rewriting an unchanged object)."""
        return (self.etag, self.last_modified.isoformat(), len(self.body), sorted(self.metadata.items()))


@dataclass
class Summary:
    buckets: int
    objects: int
    size: int


class CorruptObject(ValueError):
    pass


def encode(obj: StoredObject) -> tuple[bytes, bytes]:
    """The file's head (magic, length, JSON header); the body follows it."""
    header = json.dumps(
        {
            "key": obj.key,
            "etag": obj.etag,
            "last_modified": obj.last_modified.isoformat(),
            "metadata": obj.metadata,
            "storage_class": obj.storage_class,
            "checksum": obj.checksum,
            "size": len(obj.body),
        }
    ).encode()
    return MAGIC + _LEN.pack(len(header)) + header, obj.body


def decode(bucket: str, data: bytes) -> StoredObject:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LEN.size:
        raise CorruptObject("not an object file")
    (n,) = _LEN.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LEN.size
    body = data[start + n :]
    try:
        header = json.loads(data[start : start + n])
        if len(body) != header["size"]:
            raise CorruptObject("size does not match its header")
        return StoredObject(
            bucket=bucket,
            key=str(header["key"]),
            etag=str(header["etag"]),
            last_modified=datetime.fromisoformat(header["last_modified"]),
            body=body,
            metadata={str(k): str(v) for k, v in (header.get("metadata") or {}).items()},
            storage_class=str(header.get("storage_class") or "STANDARD"),
            checksum=dict(header.get("checksum") or {}),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptObject(f"bad header: {exc!r}") from None


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._stamps: dict[tuple[str, str], tuple] = {}

    # --- paths ---------------------------------------------------------------------------------
    def bucket_dir(self, bucket: str) -> Path:
        # A valid S3 bucket name is a safe directory name; anything else moto may accept is named by
        # its hash ("_" starts no valid name, so the two never meet; the name itself is in bucket.json).
        if _BUCKET_NAME.fullmatch(bucket):
            return self.root / bucket
        return self.root / ("_" + hashlib.sha256(bucket.encode()).hexdigest())

    def object_path(self, bucket: str, key: str) -> Path:
        # Keys may hold any character and be 1,024 bytes long: the file is named by the key's hash
        # (the key itself is in the header).
        return self.bucket_dir(bucket) / (hashlib.sha256(key.encode()).hexdigest() + _SUFFIX)

    # --- writes --------------------------------------------------------------------------------
    def _write_atomically(self, path: Path, *parts: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                for part in parts:
                    f.write(part)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def create_bucket(self, bucket: str, region: str) -> None:
        path = self.bucket_dir(bucket) / _BUCKET_META
        if not path.exists():
            self._write_atomically(path, json.dumps({"name": bucket, "region": region}).encode())

    def delete_bucket(self, bucket: str) -> None:
        d = self.bucket_dir(bucket)
        if d.exists():
            # The bucket's marker goes first: a kill during the removal leaves no bucket to load.
            with contextlib.suppress(FileNotFoundError):
                (d / _BUCKET_META).unlink()
            shutil.rmtree(d, ignore_errors=True)
        for k in [k for k in self._stamps if k[0] == bucket]:
            del self._stamps[k]

    def put(self, obj: StoredObject) -> bool:
        """Writes ``obj`` unless the same version is already on disk; True if it wrote."""
        stamp = obj.stamp()
        if self._stamps.get((obj.bucket, obj.key)) == stamp:
            return False
        self.create_bucket(obj.bucket, "us-east-1")
        self._write_atomically(self.object_path(obj.bucket, obj.key), *encode(obj))
        self._stamps[(obj.bucket, obj.key)] = stamp
        return True

    def delete(self, bucket: str, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.object_path(bucket, key).unlink()
        self._stamps.pop((bucket, key), None)

    # --- reads ---------------------------------------------------------------------------------
    def buckets(self) -> Iterator[tuple[str, str, Path]]:
        """(name, region, directory) of every stored bucket."""
        if not self.root.is_dir():
            return
        for d in sorted(self.root.iterdir()):
            meta = d / _BUCKET_META
            if not d.is_dir() or not meta.is_file():
                continue
            info = json.loads(meta.read_text())
            yield info["name"], info.get("region") or "us-east-1", d

    def load(self) -> Iterator[StoredObject]:
        """Every stored object (and forgets temporary files a killed writer left)."""
        for bucket, _region, d in self.buckets():
            for path in sorted(d.iterdir()):
                if path.name.startswith(_TMP_PREFIX):
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                if path.suffix != _SUFFIX:
                    continue
                try:
                    obj = decode(bucket, path.read_bytes())
                except CorruptObject as exc:
                    # Not something a killed writer leaves (it renames whole files): a damaged disk
                    # or a hand edit. Skipped, so that the server still starts.
                    print(f"skipped {path}: {exc}", file=sys.stderr, flush=True)
                    continue
                self._stamps[(bucket, obj.key)] = obj.stamp()
                yield obj

    def summary(self) -> Summary:
        """Counts without reading the objects (for the line `mpr-dev` prints at start)."""
        buckets = objects = size = 0
        for _name, _region, d in self.buckets():
            buckets += 1
            for path in d.glob("*" + _SUFFIX):
                with path.open("rb") as f:
                    head = f.read(len(MAGIC) + _LEN.size)
                    if not head.startswith(MAGIC):
                        continue
                    (n,) = _LEN.unpack_from(head, len(MAGIC))
                    objects += 1
                    size += path.stat().st_size - len(head) - n
        return Summary(buckets, objects, size)
