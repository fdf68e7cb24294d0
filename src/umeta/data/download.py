"""Download a file atomically, checking its checksum, with a progress bar.

The bytes go to a hidden temporary file beside the destination, are hashed while they arrive
and only replace ``dest`` (``os.replace``) once complete and verified: an interrupted, killed or
corrupt download never leaves a half-written ``dest``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from umeta.errors import UmetaError
from umeta.progress import progress_bar

_HEX_LENGTH = {"sha256": 64, "md5": 32}


def _expected_digests(sha256: str | None, md5: str | None) -> dict[str, str]:
    wanted = {}
    for algorithm, value in (("sha256", sha256), ("md5", md5)):
        if value is None:
            continue
        value = value.lower()
        if not re.fullmatch(f"[0-9a-f]{{{_HEX_LENGTH[algorithm]}}}", value):
            raise UmetaError(
                f"{algorithm}={value!r} is not a {algorithm} checksum; give "
                f"{_HEX_LENGTH[algorithm]} hexadecimal digits"
            )
        wanted[algorithm] = value
    return wanted


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying a checksum when one is given.

    Parameters
    ----------
    url : str
        ``http(s)://`` (or ``file://``) address.
    dest : path
        Where the file ends up; its folder is created. An existing file is replaced.
    sha256, md5 : str, optional
        Expected hexadecimal digest(s); every one given must match.
    progress : bool
        Show a progress bar (on stderr; `umeta.progress`).
    timeout : float
        Seconds to wait for the server on connect and on each read.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    UmetaError
        On an HTTP error, a network failure, a transfer that ends before its announced length or
        a checksum mismatch; nothing is left at ``dest`` nor in a temporary file.
    """
    wanted = _expected_digests(sha256, md5)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digests = {algorithm: hashlib.new(algorithm) for algorithm in wanted}
        request = urllib.request.Request(url, headers={"User-Agent": "umeta"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            received = 0
            with progress_bar(total, unit="B", unit_scale=True, unit_divisor=1024,
                              desc=dest.name, enabled=progress, leave=False) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    for digest in digests.values():
                        digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise UmetaError(
                f"download of {url} stopped after {received} of {total} bytes (connection "
                f"closed early); nothing was kept, try again"
            )
        for algorithm, expected in wanted.items():
            actual = digests[algorithm].hexdigest()
            if actual != expected:
                raise UmetaError(
                    f"checksum mismatch for {url}: {algorithm} {actual} but expected {expected}; "
                    f"the download was deleted, try again or supply a good copy by hand"
                )
        os.replace(tmp, dest)
    except urllib.error.HTTPError as err:
        raise UmetaError(
            f"download of {url} failed: HTTP {err.code} {err.reason}; check the address"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = " ".join(str(getattr(err, "reason", None) or err).split())
        raise UmetaError(
            f"download of {url} to {dest} failed: {reason}; check the network and the folder"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest
