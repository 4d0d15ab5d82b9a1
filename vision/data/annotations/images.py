"""Finding the file of an image an export or a task names, and reading nothing outside the
folders allowed: local files under a root, Label Studio's URLs, a content-addressed store for
images that exist only inside an export archive."""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from vision.data.annotations.records import AnnotationError, shown
from vision.data.datamix import IMAGE_SUFFIXES

STORE = "images"  # the store's folder in the cache folder (the cache_dir setting)
LS_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names
LOCAL_FILES = "/data/local-files/"
# what a task's image may be besides a path: Label Studio's own URLs and its cloud storages' URIs
STORAGE_SCHEMES = ("s3", "gs", "azure-blob")


def foreign_url(ref: str, base_url: str = "") -> str | None:
    """Why an image reference names nothing an export's images may be (None when it may): a
    `data:` URI (the photo inline), a `file:` or other scheme, an http(s) URL of another server
    than Label Studio (its own name `/data/...`). Matched by its file name, such a reference put the
    labels on whatever local photo was named alike; never fetched either."""
    parts = urlsplit(ref)
    scheme = parts.scheme.lower()
    if not scheme or len(scheme) == 1 or scheme in STORAGE_SCHEMES:  # a path (`C:` is a drive)
        return None
    if scheme == "data":
        return "an image inside the export (a data: URI) is not read: export the photo as a file"
    if scheme not in ("http", "https"):
        return f"a {scheme}: URL is no image of Label Studio's (its /data/ URLs, s3://, gs://, or a path)"
    if parts.path.startswith("/data/") or (base_url and ref.startswith(base_url.rstrip("/") + "/")):
        return None
    return f"an image on another server ({parts.netloc}): only Label Studio's own /data/ URLs are looked up"


def inside(root: Path, relative: str, named: str = "the allowed folder") -> Path:
    """`root/relative`, refused when it would leave root (`..`, absolute paths, symlinks out). The
    refusal says `named`, never the root's path: a task's sender (a webhook, an API caller) must not
    learn the server's folders; the CLI passes a name with the path its user gave."""
    if "\x00" in relative:
        raise AnnotationError(f"{relative!r}", "a NUL byte in a path")
    try:
        os.fsencode(relative)  # `\ud800` from a task's JSON names no file (stat raised, a 500)
    except UnicodeEncodeError:
        raise AnnotationError(f"{relative!r}", "half a character (a lone surrogate) in a path") from None
    base = root.resolve()
    target = (base / relative.lstrip("/")).resolve()
    if not target.is_relative_to(base):
        raise AnnotationError(repr(relative), f"leaves {named}")
    return target


def local_files_path(url: str) -> str | None:
    """The `d=` path of a Label Studio local-files URL (`/data/local-files/?d=photos/a.jpg`)."""
    parts = urlsplit(url)
    if not parts.path.endswith(LOCAL_FILES.rstrip("/")) and not parts.path.endswith(LOCAL_FILES):
        return None
    values = parse_qs(parts.query).get("d")
    if not values:
        raise AnnotationError(f"{url!r}", "a local-files URL without d=")
    return values[0]


@dataclass(frozen=True)
class TaskImages:
    """Reads the image of a Label Studio task from where it may be read, and nowhere else.

    - `/data/local-files/?d=rel` and plain relative paths: under `files_root` only;
    - `/data/upload/...` and other Label Studio paths, and absolute URLs that start with
      `base_url`: fetched from Label Studio with `token`, only when `base_url` is configured.
    """

    files_root: Path | None = None
    base_url: str = ""
    token: str = ""
    max_bytes: int = 20 * 2**20
    timeout_s: float = 15.0
    root_named: str = "the allowed folder (the local-files root)"  # how refusals name files_root

    def local(self, ref: str) -> Path | None:
        """The local file a reference names, or None when it must be fetched."""
        relative = local_files_path(ref)
        scheme = urlsplit(ref).scheme
        if relative is None and (scheme or ref.startswith("/data/")):
            return None
        if self.files_root is None:
            raise AnnotationError(f"{ref!r}", "local task files are not enabled (no files root configured)")
        return inside(self.files_root, unquote(relative if relative is not None else ref), self.root_named)

    def read(self, ref: str) -> bytes:
        path = self.local(ref)
        if path is not None:
            if not path.is_file():
                raise AnnotationError(f"{ref!r}", "no such file under the files root")
            if path.stat().st_size > self.max_bytes:
                raise AnnotationError(f"{ref!r}", f"over {self.max_bytes} bytes")
            return path.read_bytes()
        return self.fetch(ref)

    def fetch(self, ref: str) -> bytes:
        if not self.base_url:
            raise AnnotationError(
                f"{ref!r}", "fetching task images is not enabled (no Label Studio URL configured)"
            )
        base = self.base_url.rstrip("/")
        url = base + ref if ref.startswith("/") else ref
        if not (url == base or url.startswith(base + "/")):
            raise AnnotationError(f"{ref!r}", f"only images from {base} are fetched")
        request = urllib.request.Request(
            url, headers={"Authorization": f"Token {self.token}"} if self.token else {}
        )
        try:
            # the URL was checked above: Label Studio's own, never one a task chose
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data: bytes = response.read(self.max_bytes + 1)
        except OSError as err:
            raise AnnotationError(f"{url}", f"cannot fetch: {err}") from err
        if len(data) > self.max_bytes:
            raise AnnotationError(f"{url}", f"over {self.max_bytes} bytes")
        return data


@dataclass
class ImageFinder:
    """Finds the file of an image an export names: by path under allowed folders, or by file name.

    Label Studio writes `/data/upload/<project>/<8 hex>-<name>`, `/data/local-files/?d=<path>` or a
    URL; CVAT and YOLO exports carry the images beside their labels. Only files under `folders`
    (and the local-files root) are ever read; `fetch` (Label Studio, when configured) gets the rest
    into `store`.
    """

    folders: list[Path]
    store: Path
    tasks: TaskImages = field(default_factory=TaskImages)
    _names: dict[str, list[Path]] | None = None

    def find(self, ref: str, base: Path | None) -> Path:
        """The file of `ref`; `base` (None: none) is the export's folder, tried first. A
        local-files URL is read under the files root only, and a plain path is looked for there
        too, as a task's image is read for its prediction: the retraining job, which imports the
        inbox from its own folder, said "image not found" of photos the webhook had taken."""
        if (why := foreign_url(ref, self.tasks.base_url)) is not None:
            raise AnnotationError(shown(ref), why)
        relative = local_files_path(ref)
        root = self.tasks.files_root
        if relative is not None and root is not None:
            local = self.tasks.local(ref) or Path(ref)
            if not local.is_file():  # a photo deleted since, or never there: named as sent
                raise AnnotationError(repr(ref), f"no such file under {self.tasks.root_named}")
            return local
        remote = bool(urlsplit(ref).scheme) or ref.startswith("/data/")
        path = unquote(relative if relative is not None else urlsplit(ref).path if remote else ref)
        tried = [] if remote else list(dict.fromkeys(f for f in (base, *self.folders, root) if f is not None))
        named = {root: self.tasks.root_named} if root else {}
        refusals = []
        for folder in tried:
            try:
                found = inside(folder, path, named.get(folder, "the allowed folder"))
            except AnnotationError as err:
                refusals.append(err)
                continue
            if found.is_file():
                return found
        if tried and len(refusals) == len(tried):  # `../../etc/passwd`, a link out: never by name
            raise refusals[0]
        name = Path(path).name
        for wanted in dict.fromkeys((name, LS_UPLOAD_PREFIX.sub("", name))):
            matches = self.by_name().get(wanted, [])
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise AnnotationError(
                    repr(ref), f"{len(matches)} files are named {wanted} ({matches[0]}, ...)"
                )
        unfetched = remote and relative is None
        if unfetched and self.tasks.base_url:
            return self.keep(self.tasks.fetch(ref), Path(name).suffix)
        # every folder looked in: the export's own too (a COCO folder's images/ was "no folder"); the
        # files root by its name only (a webhook's sender never learns the server's folders)
        looked = dict.fromkeys([*tried, *self.folders])
        folders = ", ".join(named.get(folder, str(folder)) for folder in looked) or "no folder"
        why = "; not fetched: no Label Studio URL configured" if unfetched else ""
        raise AnnotationError(repr(ref), f"image not found (looked in {folders}{why})")

    def by_name(self) -> dict[str, list[Path]]:
        """Image files under the folders by name. A photo archive given as `--images` may hold a
        link to nothing or round a loop named like a photo (resolving it raised RuntimeError and
        stopped the import): such a link names no image and is passed over, as the scan does; so is
        a link out of its folder (`a.jpg` -> /etc/passwd: only files under the folders are read)."""
        if self._names is None:
            self._names = {}
            for folder in self.folders:
                root = folder.resolve()
                for parent, _, files in os.walk(folder):
                    for name in files:
                        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                            continue
                        try:
                            file = (Path(parent) / name).resolve(strict=True)
                        except (OSError, RuntimeError):  # RuntimeError: a loop, until Python 3.13
                            continue
                        if not file.is_relative_to(root):
                            continue
                        self._names.setdefault(name, []).append(file)
        return self._names

    def keep(self, data: bytes, suffix: str) -> Path:
        """Put bytes into the content-addressed store (images that live only inside an export)."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.store / sha[:2] / f"{sha}{suffix.lower() or '.jpg'}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(path.suffix + ".part")
            temporary.write_bytes(data)
            temporary.replace(path)
        return path
