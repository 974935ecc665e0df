"""moto's server (every AWS service it mocks, on one port), its range reads made cheap
(:mod:`.s3_ranges`), and with ``--data-dir`` its S3 objects kept on disk.

``python -m mpr_devstack.s3_server --port N`` is moto's server with range reads that cost the range.
``python -m mpr_devstack.s3_server --port N --data-dir .mpr/s3`` also loads every stored object back into
moto's S3 backend before the port opens, then serves moto's own WSGI application behind
:class:`PersistentS3`, which writes through: a request that changed objects or buckets answers only
after the change is on disk. What changed is not parsed from the URL: moto's backend reports the
buckets and keys it touched (``put_object`` is the one way an object is created, by a PUT, a copy, a
completed multipart upload or a browser form; ``delete_object`` the one way one is deleted), and the
store copies the backend's state of those keys as it is once the request ended, so concurrent writes to
one key end on disk as they end in memory.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import FakeKey, S3Backend, s3_backends

from . import s3_ranges
from .s3_store import ObjectStore, StoredObject

_local = threading.local()  # .touched: the set a request in this thread records into (None: not recording)
_installed = False
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def _touched(backend: Any, bucket: str, key: str | None) -> None:
    touched = getattr(_local, "touched", None)
    if touched is not None:
        touched.add((backend, bucket, key))


def install_hooks() -> None:
    """Makes moto's S3 backend report which buckets and keys it changes (only while a request is being
    served by :class:`PersistentS3`; elsewhere the hooks record nothing)."""
    global _installed
    if _installed:
        return

    def wrap(name: str, key_arg: bool) -> None:
        original = getattr(S3Backend, name)

        @functools.wraps(original)
        def hooked(self: Any, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
            key = (args[0] if args else kwargs.get("key_name")) if key_arg else None
            try:
                return original(self, bucket_name, *args, **kwargs)
            finally:
                _touched(self, bucket_name, key)

        setattr(S3Backend, name, hooked)

    wrap("put_object", key_arg=True)
    wrap("delete_object", key_arg=True)
    wrap("create_bucket", key_arg=False)
    wrap("delete_bucket", key_arg=False)
    _installed = True


def snapshot(bucket: str, key: FakeKey) -> StoredObject:
    return StoredObject(
        bucket=bucket,
        key=key.name,
        etag=key.etag,
        last_modified=key.last_modified,
        body=key.value,
        metadata={str(k): str(v) for k, v in key.metadata.items()},
        storage_class=key.storage_class or "STANDARD",
        checksum={
            "algorithm": key.checksum_algorithm,
            "type": key.checksum_type,
            "value": key.checksum_value,
            "parts": key.checksum_parts,
        },
    )


def restore(backend: S3Backend, obj: StoredObject) -> FakeKey:
    key = backend.put_object(
        obj.bucket,
        obj.key,
        obj.body,
        storage=obj.storage_class,
        etag=obj.etag.strip('"'),  # moto keeps it bare and quotes it when it answers
        disable_notification=True,
    )
    key.set_metadata(dict(obj.metadata))
    key.last_modified = obj.last_modified
    c = obj.checksum
    key.checksum_algorithm = c.get("algorithm")  # type: ignore[assignment]
    key.checksum_type = c.get("type")  # type: ignore[assignment]
    key.checksum_value = c.get("value")  # type: ignore[assignment]
    key.checksum_parts = c.get("parts")  # type: ignore[assignment]
    return key


def load(store: ObjectStore, backend: S3Backend | None = None) -> int:
    """Every stored bucket and object into moto's backend (the default account's); the objects' count."""
    backend = backend or s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for name, region, _dir in store.buckets():
        if name not in backend.buckets:
            backend.create_bucket(name, region)
    n = 0
    for obj in store.load():
        restore(backend, obj)
        n += 1
    return n


class PersistentS3:
    """WSGI middleware: after a request that may have changed S3 state, the keys and buckets moto's
    backend touched are written to (or removed from) the store before the response leaves."""

    def __init__(self, app: Callable, store: ObjectStore) -> None:
        self.app = app
        self.store = store
        self.lock = threading.Lock()  # one writer at a time: each sync copies the latest state

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") in _READS:
            return self.app(environ, start_response)
        touched: set[tuple[Any, str, str | None]] = set()
        _local.touched = touched
        try:
            result = self.app(environ, start_response)
        finally:
            _local.touched = None
        if not touched:
            return result
        try:
            self.sync(touched)
        except Exception:
            # The change is in memory but not on disk: say so instead of a success the next start
            # would contradict.
            traceback.print_exc()
            if hasattr(result, "close"):
                result.close()
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"the embedded S3 server could not write the change to disk\n"]
        return result

    def sync(self, touched: set[tuple[Any, str, str | None]]) -> None:
        with self.lock:
            for backend, bucket_name, key_name in sorted(touched, key=lambda t: (t[1], t[2] or "")):
                bucket = backend.buckets.get(bucket_name)
                if key_name is None:
                    if bucket is None:
                        self.store.delete_bucket(bucket_name)
                    else:
                        self.store.create_bucket(bucket_name, bucket.region_name)
                    continue
                if bucket is None:
                    continue
                current = bucket.keys.get(key_name)
                if isinstance(current, FakeKey):  # the latest version (not a delete marker)
                    self.store.put(snapshot(bucket_name, current))
                else:
                    self.store.delete(bucket_name, key_name)


def make_app(store: ObjectStore) -> PersistentS3:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    return PersistentS3(app, store)


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    p = argparse.ArgumentParser(prog="python -m mpr_devstack.s3_server", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--data-dir", type=Path, help="keep the S3 objects here (default: in memory only)")
    args = p.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs with it
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))

    s3_ranges.install()
    app: Callable
    if args.data_dir is None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        app = DomainDispatcherApplication(create_backend_app)
    else:
        store = ObjectStore(args.data_dir)
        install_hooks()
        n = load(store)  # before the port opens: no client sees a half-loaded server
        print(f"loaded {n} objects from {args.data_dir}", flush=True)
        app = make_app(store)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
