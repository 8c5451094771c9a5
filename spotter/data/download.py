"""Fetch Google Speech Commands v2 once: resumable download, SHA-256 check, safe extraction.

Layout of the cache folder (``default_data_dir()`` unless told otherwise)::

    <data_dir>/speech_commands_v0.02.tar.gz        the verified archive (kept)
    <data_dir>/speech_commands_v0.02.tar.gz.part   a download in progress (resumed on re-run)
    <data_dir>/speech_commands_v0.02/              the extracted dataset root
    <data_dir>/speech_commands_v0.02/.spotter-extracted   written last: extraction finished

Rules: a finished extraction (its marker present) is returned at once, with no
network and no hashing; a verified archive is never downloaded again; an
archive put into ``<data_dir>`` by hand is used as it is (after its checksum is
checked); an interrupted extraction (no marker) is simply redone.  Every
failure is a :class:`DataError` with a one-line message saying what happened
and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import json
import os
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

from ..config import BACKGROUND_NOISE_DIR
from ..errors import SpotterError

GSC_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
#: SHA-256 of ``speech_commands_v0.02.tar.gz``.  Source: torchaudio's
#: ``SPEECHCOMMANDS`` dataset, ``_CHECKSUMS`` in
#: ``torchaudio/datasets/speechcommands.py`` (entry for exactly :data:`GSC_URL`).
GSC_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
#: Size of the archive in bytes (about 2.3 GiB).  Source: the Speech Commands
#: recipe of Kaldi/ESPnet-style toolkits (``data_tar_size=2428923189``).  Used in
#: messages only; the checksum is the gate.
GSC_SIZE = 2_428_923_189

#: Written into the extracted folder once extraction has finished.
MARKER = ".spotter-extracted"
_CHUNK = 1 << 20
_TIMEOUT_S = 60
_HAS_TAR_FILTER = hasattr(tarfile, "data_filter")  # Python 3.12+, and 3.8.17/3.9.17/3.10.12/3.11.4+


class DataError(SpotterError):
    """A dataset could not be fetched, verified, extracted or read; the message says what to do."""


def default_data_dir() -> Path:
    """Where downloaded datasets live: ``$SPOTTER_DATA_DIR``, else ``$XDG_CACHE_HOME/spotter``,
    else ``~/.cache/spotter``."""
    env = os.environ.get("SPOTTER_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "spotter"
    return Path.home() / ".cache" / "spotter"


def archive_name(url: str) -> str:
    """The file name an archive downloaded from ``url`` is stored under."""
    name = PurePosixPath(urlsplit(url).path).name
    return name or "dataset.tar.gz"


def _folder_name(name: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name + ".d"


def fetch_speech_commands(data_dir: str | os.PathLike | None = None, url: str = GSC_URL,
                          sha256: str | None = GSC_SHA256, progress: bool = True) -> Path:
    """Download, verify and extract the Speech Commands archive once; return the dataset root.

    ``sha256=None`` skips verification (for private mirrors of other archives).
    Progress bars go to stderr and are off with ``progress=False``.
    """
    data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {data_dir} ({e.strerror or e}); "
                        "choose another with --data-dir or $SPOTTER_DATA_DIR") from None
    name = archive_name(url)
    archive = data_dir / name
    target = data_dir / _folder_name(name)
    with _lock(data_dir / f".{name}.lock"):
        if _extraction_done(target, sha256):
            return _dataset_root(target)
        if archive.is_file():
            digest = _verify(archive, sha256, progress)
        else:
            digest = _download(url, archive, sha256, progress)
        _extract(archive, target, digest, progress)
    return _dataset_root(target)


# -- locking (two processes, e.g. DDP ranks, fetching at once) ---------------------


@contextlib.contextmanager
def _lock(path: Path):
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent first fetches are the user's business
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"spotter: waiting for another process fetching into {path.parent} ...", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # no locking on this file system (some network mounts): go on without
            pass
        yield  # closing the file releases the lock


# -- download ------------------------------------------------------------------------


def _progress_bar(total: int | None, initial: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, disable=not progress, leave=False)


def hash_file(path: Path, hasher=None, progress: bool = False, desc: str = ""):
    """``hasher`` (default SHA-256) updated with the file's bytes, read in chunks (a progress bar when asked)."""
    hasher = hasher or hashlib.sha256()
    with open(path, "rb") as f, _progress_bar(path.stat().st_size, 0, desc or f"checking {path.name}",
                                              progress) as bar:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
            bar.update(len(chunk))
    return hasher


def _verify(archive: Path, sha256: str | None, progress: bool) -> str:
    """Check an archive already in place (downloaded earlier or put there by hand)."""
    try:
        digest = hash_file(archive, progress=progress).hexdigest()
    except OSError as e:
        raise DataError(f"cannot read {archive} ({e.strerror or e}); check it, or delete it and re-run") from None
    if sha256 and digest != sha256.lower():
        raise DataError(f"{archive}: checksum mismatch, expected SHA-256 {sha256.lower()}, got {digest}; "
                        "the file is damaged or not the right archive: delete it and re-run") from None
    return digest


def _download(url: str, archive: Path, sha256: str | None, progress: bool) -> str:
    """Download ``url`` to ``archive`` via ``archive.part`` (resumed when the server allows it)."""
    part = archive.with_name(archive.name + ".part")
    by_hand = (f"check the network, or download {url} by hand into {archive.parent}/ "
               f"(as {archive.name}) and re-run")
    for _attempt in range(2):  # a second round only after a 416 on a damaged .part
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": "spotter"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:  # nothing left to send: the .part may be whole already
                digest = hash_file(part).hexdigest()
                if not sha256 or digest == sha256.lower():
                    os.replace(part, archive)
                    return digest
                part.unlink()
                continue
            raise DataError(f"downloading {url} failed: HTTP {e.code} {e.reason}; {by_hand}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise DataError(f"cannot download {url} ({getattr(e, 'reason', None) or e}); {by_hand}") from None

        with response:
            resuming = bool(offset) and response.status == 206 and \
                response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
            if not resuming:
                offset = 0
            length = response.headers.get("Content-Length", "")
            total = offset + int(length) if length.strip().isdigit() else None
            received = offset
            try:
                hasher = hash_file(part) if resuming else hashlib.sha256()
                with open(part, "ab" if resuming else "wb") as out, \
                        _progress_bar(total, offset, archive.name, progress) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                    raise DataError(f"no space left in {archive.parent} while downloading {archive.name} "
                                    f"({GSC_SIZE / 2**30:.1f} GiB for Speech Commands, about twice that with "
                                    "the extracted copy); free space or choose another --data-dir, then re-run"
                                    ) from None
                raise DataError(f"download of {url} stopped after {received} of {total or '?'} bytes ({e}); "
                                f"re-run to resume it (partial file kept as {part})") from None
        if total is not None and received < total:
            raise DataError(f"download of {url} truncated: got {received} of {total} bytes; "
                            f"re-run to resume it (partial file kept as {part})")
        digest = hasher.hexdigest()
        if sha256 and digest != sha256.lower():
            part.unlink(missing_ok=True)
            raise DataError(f"checksum mismatch for {url}: expected SHA-256 {sha256.lower()}, got {digest}; "
                            "the corrupt download was deleted: re-run to download it again")
        os.replace(part, archive)
        return digest
    raise DataError(f"cannot download {url}: the server refuses to resume and the partial file was bad; re-run")


# -- extraction -------------------------------------------------------------------------


def _extraction_done(target: Path, sha256: str | None) -> bool:
    marker = target / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return False
    return not sha256 or recorded == sha256.lower()


def _unsafe(name: str) -> bool:
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    return (not name or posix.is_absolute() or windows.is_absolute() or bool(windows.drive)
            or name.startswith(("/", "\\")) or ".." in posix.parts or ".." in windows.parts)


def _check_member(member: tarfile.TarInfo, archive: Path, target: Path) -> None:
    refuse = (f"refusing to extract {archive}: member {member.name!r} %s; it is not a genuine dataset "
              "archive: delete it and re-run")
    if _unsafe(member.name):
        raise DataError(refuse % f"would be written outside {target}")
    if (member.issym() or member.islnk()) and _unsafe(member.linkname):
        raise DataError(refuse % f"links to {member.linkname!r}, outside {target}")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise DataError(refuse % "is a device, FIFO or other special file")


def _extract(archive: Path, target: Path, digest: str, progress: bool) -> None:
    from tqdm import tqdm

    damaged = f"the archive is damaged: delete {archive} and re-run"
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:  # all checked before anything is written
                _check_member(member, archive, target)
            target.mkdir(parents=True, exist_ok=True)
            (target / MARKER).unlink(missing_ok=True)
            for member in tqdm(members, desc=f"extracting {archive.name}", unit="file", file=sys.stderr,
                               disable=not progress, leave=False):
                if _HAS_TAR_FILTER:
                    tar.extract(member, target, filter="data")
                else:
                    tar.extract(member, target)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - sorted into messages below
        if _HAS_TAR_FILTER and isinstance(e, tarfile.FilterError):
            raise DataError(f"refusing to extract {archive}: {e}; delete it and re-run") from None
        if isinstance(e, (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)):
            raise DataError(f"cannot extract {archive} ({e}); {damaged}") from None
        if isinstance(e, OSError):
            raise DataError(f"cannot extract {archive} into {target} ({e.strerror or e}); "
                            "free space or fix permissions, then re-run") from None
        raise
    tmp = target / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"archive": archive.name, "sha256": digest, "members": len(members)}))
    os.replace(tmp, target / MARKER)


def _dataset_root(target: Path) -> Path:
    """The extracted folder, or its only subfolder when the archive wrapped everything in one."""
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        if (inner / "validation_list.txt").is_file() or (inner / BACKGROUND_NOISE_DIR).is_dir():
            return inner
    return target
