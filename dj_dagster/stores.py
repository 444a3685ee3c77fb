"""Object stores: named places for blobs, attachments and files, reached through fsspec.

Stores are configured in ``config["stores"]`` (see :mod:`dj_dagster.settings`): a mapping
of store name -> spec. Supported specs::

    {"protocol": "file", "location": "/data/store"}
    {"protocol": "s3", "location": "bucket/prefix", "endpoint_url": "http://minio:9000",
     "access_key": "...", "secret_key": "...", "region": "us-east-1"}

For ``s3`` the bucket may also be given as ``"bucket"`` (then ``location`` is the
prefix inside it), and DataJoint's ``"endpoint": "host:port"`` + ``"secure": false`` is
accepted instead of ``endpoint_url``. Secrets left out of the spec are read from
``DJ_STORE_<NAME>_ACCESS_KEY`` / ``DJ_STORE_<NAME>_SECRET_KEY`` (``<NAME>`` upper-cased,
other characters than letters and digits replaced by ``_``), then from
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; without any, botocore's own credential
chain applies. Optional s3 keys: ``region``, ``retries`` (s3fs' retry count),
``config_kwargs`` / ``client_kwargs`` (passed to botocore), ``options`` (passed to
``s3fs.S3FileSystem``), ``anon``. Any other fsspec protocol is passed through as
``fsspec.filesystem(protocol, **spec.get("options", {}))``.

Paths given to a :class:`Store` are relative POSIX paths inside the store's location
(``"ab/schema/abcdef..."``); absolute paths and ``..`` are refused. Writes to a local
folder are atomic (a temporary file in the same folder, then ``os.replace``); S3 puts are
atomic by nature. ``repr(store)`` and every :class:`StoreError` message are free of
secret keys.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, TypeVar

from .settings import config

__all__ = [
    "Store",
    "StoreError",
    "ObjectNotFoundError",
    "get_store",
    "clear_store_cache",
    "store_names",
]

_TMP_SUFFIX = ".dj-tmp"
_MAX_WORKERS = 16

_umask_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _process_umask() -> int:
    """The process umask, read on first use (not at import): from /proc where it is shown,
    else by setting and restoring it under a lock (os.umask can only be read that way)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


class StoreError(Exception):
    """A store is unknown, misconfigured, or an operation on it failed."""


class ObjectNotFoundError(StoreError, FileNotFoundError):
    """The object does not exist in the store (also a ``FileNotFoundError``)."""

    def __str__(self) -> str:  # OSError's __str__ would format errno/strerror
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- config


def store_names() -> list[str]:
    """The configured store names, in configuration order (datajoint's ``"default"`` /
    ``"filepath_default"`` entries name a store and are not stores themselves)."""
    return [n for n, spec in (config.get("stores") or {}).items() if not isinstance(spec, str)]


def _default_store_name() -> str:
    """``config["default_store"]``, else datajoint's ``stores["default"]`` (so that one
    ``DJ_STORES`` JSON configures both libraries), else the first configured store."""
    stores = config.get("stores") or {}
    default = config.get("default_store") or stores.get("default")
    if isinstance(default, str) and default:
        return default.lstrip("@")
    names = store_names()
    if not names:
        raise StoreError("no object stores are configured (config['stores'] is empty)")
    return names[0]


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _resolve_spec(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``spec`` with defaults and secrets filled in from the environment."""
    if not isinstance(spec, Mapping):
        raise StoreError(f"store {name!r}: spec must be a mapping, got {type(spec).__name__}")
    resolved = dict(spec)
    protocol = str(resolved.get("protocol") or "file").lower()
    if protocol in ("local", "filesystem"):
        protocol = "file"
    if protocol in ("s3a", "s3n", "minio"):
        protocol = "s3"
    resolved["protocol"] = protocol
    if protocol == "s3":
        env = _env_name(name)
        if not resolved.get("access_key"):
            resolved["access_key"] = (
                os.environ.get(f"DJ_STORE_{env}_ACCESS_KEY")
                or os.environ.get("AWS_ACCESS_KEY_ID")
                or None
            )
        if not resolved.get("secret_key"):
            resolved["secret_key"] = (
                os.environ.get(f"DJ_STORE_{env}_SECRET_KEY")
                or os.environ.get("AWS_SECRET_ACCESS_KEY")
                or None
            )
        if not resolved.get("session_token"):
            resolved["session_token"] = (
                os.environ.get(f"DJ_STORE_{env}_SESSION_TOKEN")
                # AWS's temporary token belongs to AWS's key pair only
                or (
                    os.environ.get("AWS_SESSION_TOKEN")
                    if resolved["access_key"] and resolved["access_key"] == os.environ.get("AWS_ACCESS_KEY_ID")
                    else None
                )
                or None
            )
    return resolved


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return repr(value)


_cache: dict[tuple[str, Any], "Store"] = {}
_cache_lock = threading.Lock()


def get_store(name: str | None = None) -> "Store":
    """The store named ``name`` (``None``, ``""`` or ``"@"``: the default store).

    The default is ``config["default_store"]`` when set, else the first configured store.
    Store objects are cached per (name, resolved spec): changing the configuration or the
    secrets in the environment yields a new object.
    """
    stores = config.get("stores") or {}
    key_name = (name or "").strip()
    if key_name.startswith("@"):
        key_name = key_name[1:]
    if not key_name:
        key_name = _default_store_name()
    if key_name not in stores:
        configured = ", ".join(repr(n) for n in stores) or "none"
        raise StoreError(f"unknown store {key_name!r}; configured stores: {configured}")
    spec = _resolve_spec(key_name, stores[key_name])
    cache_key = (key_name, _freeze(spec))
    with _cache_lock:
        store = _cache.get(cache_key)
        if store is None:
            store = Store(key_name, spec, _original=stores[key_name])
            _cache[cache_key] = store
    return store


def clear_store_cache() -> None:
    """Forget cached Store objects (after changing ``config['stores']`` or secrets)."""
    with _cache_lock:
        _cache.clear()


def _rebuild_store(name: str, original_spec: Mapping[str, Any]) -> "Store":
    spec = _resolve_spec(name, original_spec)
    return Store(name, spec, _original=original_spec)


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(action: str) -> Callable[[_F], _F]:
    """Turn any non-StoreError exception of a Store method into a secret-free StoreError.

    The new error is raised after the ``except`` block has ended, so the original exception
    is not attached as ``__context__``; it is attached as ``__cause__`` only when it does
    not mention a secret.
    """

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(self: "Store", *args: Any, **kwargs: Any) -> Any:
            error: StoreError | None = None
            try:
                return fn(self, *args, **kwargs)
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001
                error = self._wrap(exc, action, _describe(args[0]) if args else None)
            raise error

        return wrapper  # type: ignore[return-value]

    return decorate


def _describe(arg: Any) -> Any:
    if isinstance(arg, (str, os.PathLike)):
        return os.fspath(arg)
    try:
        n = len(arg)
    except TypeError:
        return None
    return _Many(n)


class _Many(int):
    def __repr__(self) -> str:
        return f"({int(self)} objects)"


# --------------------------------------------------------------------------- the store


class Store:
    """One configured object store.

    Attributes: ``name``, ``protocol``, ``location`` (folder or ``bucket/prefix``),
    ``root`` (the fsspec path of the location), ``fs`` (the fsspec filesystem), ``spec``
    (the configuration with secrets masked).
    """

    def __init__(self, name: str, spec: Mapping[str, Any], *, _original: Mapping[str, Any] | None = None):
        self.name = name
        spec = dict(spec)
        self.protocol: str = str(spec.get("protocol") or "file").lower()
        self._original = dict(_original if _original is not None else spec)
        self._secrets = tuple(
            str(spec[k]) for k in ("secret_key", "session_token") if spec.get(k)
        )
        self.spec = {
            k: ("***" if k in ("secret_key", "session_token") and v else v) for k, v in spec.items()
        }
        self.endpoint_url: str | None = None
        try:
            if self.protocol == "file":
                self._init_file(spec)
            elif self.protocol == "s3":
                self._init_s3(spec)
            else:
                self._init_generic(spec)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - report as StoreError, secrets scrubbed
            error = self._wrap(exc, "configure", None)
        else:
            return
        raise error

    # ----------------------------------------------------------------- construction

    def _init_file(self, spec: Mapping[str, Any]) -> None:
        import fsspec

        location = spec.get("location")
        if not location:
            raise StoreError(f"store {self.name!r}: a 'file' store needs a 'location' folder")
        location = str(location)
        if location.startswith("file://"):
            location = location[len("file://"):]
        self.location = str(Path(location).expanduser().absolute())
        self.root = self.location
        self._real_root = os.path.realpath(self.location)  # the store may itself be reached by a link
        self._inside_dirs: set[str] = set()  # existing folders found to resolve inside the store
        self.fsync = bool(spec.get("fsync", False))
        self.fs = fsspec.filesystem("file")

    def _init_s3(self, spec: Mapping[str, Any]) -> None:
        import s3fs

        location = str(spec.get("location") or "").strip()
        for scheme in ("s3://", "s3a://", "s3n://"):
            if location.startswith(scheme):
                location = location[len(scheme):]
        location = location.strip("/")
        bucket = str(spec.get("bucket") or "").strip("/")
        if bucket:
            location = f"{bucket}/{location}" if location else bucket
        if not location:
            raise StoreError(
                f"store {self.name!r}: an 's3' store needs a 'location' of the form 'bucket/prefix'"
            )
        self.location = location
        self.root = location
        endpoint_url = spec.get("endpoint_url")
        if not endpoint_url and spec.get("endpoint"):
            endpoint = str(spec["endpoint"])
            if "://" not in endpoint:
                secure = spec.get("secure", True)
                if isinstance(secure, str):
                    secure = secure.lower() not in ("0", "false", "no", "off")
                endpoint = f"{'https' if secure else 'http'}://{endpoint}"
            endpoint_url = endpoint
        self.endpoint_url = endpoint_url or None
        client_kwargs = dict(spec.get("client_kwargs") or {})
        region = spec.get("region") or spec.get("region_name")
        if region:
            client_kwargs.setdefault("region_name", region)
        elif self.endpoint_url:
            client_kwargs.setdefault("region_name", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        # a deep copy: botocore rewrites ``retries`` in place, which would change
        # config["stores"], hence the cache key: a new Store (and client) at every get_store
        config_kwargs = copy.deepcopy(dict(spec.get("config_kwargs") or {}))
        config_kwargs.setdefault("connect_timeout", 10)
        config_kwargs.setdefault("retries", {"max_attempts": 3, "mode": "standard"})
        options: dict[str, Any] = dict(spec.get("options") or {})
        options.update(
            key=spec.get("access_key") or None,
            secret=spec.get("secret_key") or None,
            token=spec.get("session_token") or None,
            endpoint_url=self.endpoint_url,
            client_kwargs=client_kwargs,
            config_kwargs=config_kwargs,
            # other processes write to the same bucket: never trust a cached listing
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        if spec.get("anon"):
            options["anon"] = True
        self.fs = s3fs.S3FileSystem(**options)
        if spec.get("retries") is not None:  # s3fs' own retries, on top of botocore's
            self.fs.retries = max(1, int(spec["retries"]))

    def _init_generic(self, spec: Mapping[str, Any]) -> None:
        import fsspec

        location = str(spec.get("location") or "")
        prefix = f"{self.protocol}://"
        if location.startswith(prefix):
            location = location[len(prefix):]
        self.location = location.rstrip("/")
        self.root = self.location
        from .storage_adapter import get_storage_adapter

        adapter = get_storage_adapter(self.protocol)
        if adapter is not None:  # a plugin protocol
            adapter.validate_spec(dict(self._original))
            self.fs = adapter.create_filesystem(dict(self._original))
            return
        self.fs = fsspec.filesystem(self.protocol, **dict(spec.get("options") or {}))

    # ----------------------------------------------------------------- presentation

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"protocol={self.protocol!r}", f"location={self.location!r}"]
        if self.endpoint_url:
            parts.append(f"endpoint_url={self.endpoint_url!r}")
        return f"Store({', '.join(parts)})"

    __str__ = __repr__

    def __reduce__(self):
        # Pickle the configuration as given (secrets from the environment are re-read in the
        # receiving process), never the resolved secrets.
        return (_rebuild_store, (self.name, self._original))

    # ----------------------------------------------------------------- errors

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _leaks(self, exc: BaseException | None) -> bool:
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            try:
                texts = [str(exc), repr(exc), *map(repr, getattr(exc, "args", ()))]
            except Exception:  # noqa: BLE001
                return True
            if any(secret in text for text in texts for secret in self._secrets if secret):
                return True
            exc = exc.__cause__ or exc.__context__
        return False

    def _wrap(self, exc: BaseException, action: str, path: Any) -> StoreError:
        """A StoreError for ``exc``, secret-free; chained to ``exc`` only if that is safe."""
        where = f" {path!r}" if path is not None else ""
        if isinstance(exc, FileNotFoundError) and action in ("get", "get_many", "open", "size"):
            detail = str(exc)
            detail = f" ({detail})" if detail and detail not in (str(path), self._abs_or(path)) else ""
            error: StoreError = ObjectNotFoundError(
                self._scrub(f"store {self.name!r}: object{where} not found{detail}")
            )
        else:
            detail = f"{type(exc).__name__}: {exc}"
            error = StoreError(self._scrub(f"store {self.name!r}: {action}{where} failed: {detail}"))
        if not self._leaks(exc):
            error.__cause__ = exc
        error.__suppress_context__ = True
        return error

    # ----------------------------------------------------------------- paths

    def _rel(self, path: str) -> str:
        if not isinstance(path, str):
            path = os.fspath(path)
            if not isinstance(path, str):
                raise StoreError(f"store {self.name!r}: path must be a string, got {path!r}")
        p = path.replace("\\", "/")
        if p.startswith("/") or re.match(r"^[A-Za-z]:", p) or "://" in p:
            raise StoreError(f"store {self.name!r}: path {path!r} must be relative to the store")
        parts = [seg for seg in p.split("/") if seg not in ("", ".")]
        if any(seg == ".." for seg in parts):
            raise StoreError(f"store {self.name!r}: path {path!r} must not contain '..'")
        if not parts:
            raise StoreError(f"store {self.name!r}: empty object path {path!r}")
        return "/".join(parts)

    def _abs_or(self, path: Any) -> str:
        try:
            return self._abs(self._rel(path))
        except Exception:  # noqa: BLE001
            return ""

    def _abs(self, rel: str) -> str:
        if self.protocol == "file":
            target = os.path.join(self.root, *rel.split("/"))
            if not self._inside(os.path.dirname(target)) or (
                    os.path.islink(target) and not self._inside(target, remember=False)):
                raise StoreError(f"store {self.name!r}: {rel!r} leads outside the store's folder "
                                 "through a symbolic link; links out of a store are not followed")
            return target
        return f"{self.root}/{rel}" if self.root else rel

    def _inside(self, path: str, remember: bool = True) -> bool:
        """Whether ``path`` of a file store, its links resolved, stays in the store's folder.
        Existing folders found inside are remembered (one lstat per path afterwards)."""
        if path in self._inside_dirs and not os.path.islink(path):
            return True
        real = os.path.realpath(path)
        inside = real == self._real_root or real.startswith(self._real_root + os.sep)
        if inside and remember and len(self._inside_dirs) < 100_000 and os.path.isdir(real):
            self._inside_dirs.add(path)
        return inside

    def full_path(self, path: str) -> str:
        """Where ``path`` lives: an absolute file path, or ``s3://bucket/prefix/path``."""
        rel = self._rel(path)
        if self.protocol == "file":
            return self._abs(rel)
        return f"{self.protocol}://{self._abs(rel)}"

    # ----------------------------------------------------------------- single objects

    @_guarded("put")
    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path``, replacing any existing object atomically."""
        target = self._abs(self._rel(path))
        data = _as_bytes(data)
        if self.protocol == "file":
            self._put_local(target, data)
        else:
            self.fs.pipe_file(target, data)

    def _put_local(self, target: str, data: bytes) -> None:
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=_TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_process_umask())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @_guarded("get")
    def get(self, path: str) -> bytes:
        """The bytes at ``path``; :class:`ObjectNotFoundError` if there is none."""
        target = self._abs(self._rel(path))
        if self.protocol == "file":
            with open(target, "rb") as f:
                return f.read()
        return self.fs.cat_file(target)

    @_guarded("exists")
    def exists(self, path: str) -> bool:
        target = self._abs(self._rel(path))
        if self.protocol == "file":
            return os.path.isfile(target)
        return bool(self.fs.isfile(target))

    @_guarded("exists")
    def exists_many(self, paths: Iterable[str]) -> set[str]:
        """Which of ``paths`` exist, asked concurrently. On S3 one HEAD request a path:
        ``fs.isfile`` follows a HEAD that finds nothing with a LIST (a missing key costs two
        requests), and reads any error as absence. Here only "not found" (404) and "access
        denied" (403, what a HEAD on a missing key answers without ``s3:ListBucket``) mean
        absent; other errors are raised."""
        paths = list(dict.fromkeys(paths))
        targets = [self._abs(self._rel(p)) for p in paths]
        if not targets:
            return set()
        if self.protocol == "s3":
            found = self._s3_gather(self._s3_head, [(t,) for t in targets])
        else:
            found = self._threaded(os.path.isfile if self.protocol == "file" else self.fs.isfile, targets)
        present = set()
        for p, ok in zip(paths, found):
            if isinstance(ok, BaseException):
                raise self._wrap(ok, "exists", p)
            if ok:
                present.add(p)
        return present

    async def _s3_head(self, target: str) -> bool:
        bucket, key = target.split("/", 1)  # as given: no glob or ?versionId parsing
        try:
            await self.fs._call_s3("head_object", self.fs.kwargs, Bucket=bucket, Key=key)
        except (FileNotFoundError, PermissionError):
            return False
        return True

    @_guarded("size")
    def size(self, path: str) -> int:
        target = self._abs(self._rel(path))
        if self.protocol == "file":
            return os.stat(target).st_size
        return int(self.fs.size(target))

    @_guarded("open")
    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> IO:
        """A file object for ``path``. Local writes (``w``/``x`` modes) are atomic: the object
        appears when the file is closed, and not at all if its ``with`` block raises."""
        target = self._abs(self._rel(path))
        if self.protocol != "file":
            return self.fs.open(target, mode, **kwargs)
        if "a" in mode or "+" in mode:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            return open(target, mode, **kwargs)
        if "w" in mode or "x" in mode:
            if "x" in mode and os.path.exists(target):
                raise FileExistsError(f"{path!r} exists")
            return _AtomicLocalFile(self, target, mode, kwargs)  # type: ignore[return-value]
        return open(target, mode, **kwargs)

    # ----------------------------------------------------------------- many objects

    @_guarded("remove")
    def remove(self, paths: str | Iterable[str]) -> None:
        """Delete objects; missing ones are ignored."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        targets = [self._abs(self._rel(p)) for p in paths]
        if not targets:
            return
        if self.protocol == "file":
            for target in targets:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(target)
            self._prune({os.path.dirname(t) for t in targets})
        elif self.protocol == "s3":
            self._s3_delete(targets)
        else:
            for target in targets:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(target)

    def _prune(self, folders: Iterable[str]) -> None:
        """Remove folders left empty, up to (not including) the store root."""
        root = os.path.normpath(self.root)
        for folder in sorted(folders, key=len, reverse=True):
            folder = os.path.normpath(folder)
            while folder != root and folder.startswith(root + os.sep):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
                folder = os.path.dirname(folder)

    @_guarded("list")
    def list(self, prefix: str = "") -> list[str]:  # noqa: A003 - API name
        """Relative paths of all objects whose path starts with ``prefix``, sorted."""
        prefix = (prefix or "").replace("\\", "/").lstrip("/")
        while prefix.startswith("./"):
            prefix = prefix[2:]
        if ".." in prefix.split("/"):
            raise StoreError(f"store {self.name!r}: prefix {prefix!r} must not contain '..'")
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if self.protocol == "file":
            found = self._list_local(folder)
        else:
            base = "/".join(p for p in (self.root, folder) if p)
            found = []
            for full in self.fs.find(base):
                full = full.split("://", 1)[-1]
                if not self.root:
                    found.append(full)
                elif full.startswith(self.root + "/"):
                    found.append(full[len(self.root) + 1:])
        return sorted(p for p in found if p.startswith(prefix))

    def _list_local(self, folder: str) -> list[str]:
        base = os.path.join(self.root, *folder.split("/")) if folder else self.root
        if not os.path.isdir(base):
            return []
        out = []
        for dirpath, _dirs, files in os.walk(base):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for fname in files:
                if fname.endswith(_TMP_SUFFIX):
                    continue
                out.append(fname if rel_dir == "." else f"{rel_dir}/{fname}")
        return out

    @_guarded("put_many")
    def put_many(self, items: Mapping[str, bytes]) -> None:
        """Write many objects concurrently."""
        pairs = [(self._abs(self._rel(p)), _as_bytes(d)) for p, d in items.items()]
        if not pairs:
            return
        if self.protocol == "s3":
            self.fs.pipe(dict(pairs))
        elif self.protocol == "file":
            self._threaded(lambda pair: self._put_local(*pair), pairs)
        else:
            self._threaded(lambda pair: self.fs.pipe_file(*pair), pairs)

    @_guarded("get_many")
    def get_many(self, paths: Iterable[str], sizes: Mapping[str, int] | None = None) -> dict[str, bytes]:
        """``{path: bytes}`` for many objects read concurrently, keyed by the paths given.
        Raises :class:`ObjectNotFoundError` if any is missing. ``sizes`` (expected sizes,
        e.g. recorded in the database) spare S3 reads of objects smaller than a block the
        HEAD that s3fs sends first to choose between one GET and ranged GETs."""
        paths = list(dict.fromkeys(paths))
        targets = {p: self._abs(self._rel(p)) for p in paths}
        if not targets:
            return {}
        if self.protocol != "s3":
            return dict(zip(paths, self._threaded(self.get, paths)))
        fs = self.fs
        small = {p for p, n in (sizes or {}).items() if isinstance(n, int) and 0 <= n <= fs.default_block_size}

        async def read(target: str, one_get: bool) -> bytes:
            return await (fs._cat_file(target, max_concurrency=1) if one_get else fs._cat_file(target))

        # fs.cat(list) would glob-expand paths containing * ? [ ]: read each key as given.
        values = self._s3_gather(read, [(t, p in small) for p, t in targets.items()])
        out: dict[str, bytes] = {}
        for p, value in zip(paths, values):
            if isinstance(value, BaseException):
                raise self._wrap(value, "get", p)
            out[p] = value
        return out

    def _s3_gather(self, fn: str | Callable[..., Any], arglist: list[tuple], batch_size: int | None = None) -> list:
        """Await ``fn(*args)`` (a coroutine function, or the name of one of ``fs``'s) for each
        args concurrently on fsspec's event loop; exceptions are returned in place of results."""
        from fsspec.asyn import _run_coros_in_chunks, sync

        func = getattr(self.fs, fn) if isinstance(fn, str) else fn

        async def gather() -> list:
            coros = [func(*args) for args in arglist]
            return await _run_coros_in_chunks(
                coros, batch_size=batch_size, nofiles=True, return_exceptions=True
            )

        return sync(self.fs.loop, gather)

    def _s3_delete(self, targets: list[str]) -> None:
        """Delete keys with DeleteObjects, 1000 a request; no glob expansion (``fs.rm``
        would expand ``[...]`` and could delete other objects)."""
        bucket = self.root.split("/", 1)[0]
        keys = list(dict.fromkeys(t.split("/", 1)[1] for t in targets))
        fs = self.fs

        async def delete(chunk: list[str]) -> list:
            out = await fs._call_s3(
                "delete_objects", Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )
            return out.get("Errors") or []

        chunks = [(keys[i:i + 1000],) for i in range(0, len(keys), 1000)]
        failures = []
        for result in self._s3_gather(delete, chunks, batch_size=4):
            if isinstance(result, BaseException):
                raise result
            failures += [e for e in result if e.get("Code") != "NoSuchKey"]
        for t in targets:
            fs.invalidate_cache(t)
        if failures:
            first = failures[0]
            raise StoreError(
                self._scrub(
                    f"store {self.name!r}: could not delete {len(failures)} object(s), e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')}: {first.get('Message')}"
                )
            )

    def _threaded(self, fn: Callable[[Any], Any], items: list) -> list:
        if len(items) == 1:
            return [fn(items[0])]
        with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))


class _AtomicLocalFile:
    """A writable file that becomes visible at ``target`` only when closed cleanly."""

    def __init__(self, store: Store, target: str, mode: str, kwargs: dict):
        self._store = store
        self._target = target
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=_TMP_SUFFIX)
        self._file = os.fdopen(fd, mode.replace("x", "w"), **kwargs)
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __iter__(self):
        return iter(self._file)

    def __enter__(self) -> "_AtomicLocalFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._file.flush()
            if self._store.fsync:
                os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self._tmp, 0o666 & ~_process_umask())
            os.replace(self._tmp, self._target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            raise

    def discard(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    @property
    def closed(self) -> bool:
        return self._done


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"object data must be bytes, got {type(data).__name__}")
