"""Downloading Multi30k (task 1, English-German), checked against known SHA-256 sums.

The files come from the official repository https://github.com/multi30k/dataset, ``data/task1/raw/``,
as ``<split>.<lang>.gz``. Each is gunzipped and stored under the local name used throughout the
project (``train.en``, ``val.de``, ``test2016.en``, ...) only if the SHA-256 of the decompressed bytes
is the expected one. Data is written to a temporary file next to the target and renamed into place,
so a failed or corrupted download never leaves a half-written file behind. Files already present
with the right checksum are not downloaded again.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

from .corpus import sha256_file

logger = logging.getLogger(__name__)

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"

# SHA-256 of each decompressed file (provenance: the dataset's SOURCE.md, repository commit a3d2e0d).
MULTI30K_FILES: dict[str, str] = {
    "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    "val.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    "val.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    "test2016.en": "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",
    "test2016.de": "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",
    "test2017.en": "ce1450ddc5ab0834502579d77a170849952e15a2938b34cc503bdc25ebb4fb98",
    "test2017.de": "c3078bc3b36808bf9d20eb2347ed6137016179ef59ec0d2b9b8ecc3fb2880081",
    "test2018.en": "4e585c2dd525911a6ea7730e9d0b516239af3f1b1ffae6a2130223cfb639f25e",
    "test2018.de": "39fcc8b3331d76fb42d648d019c6898b0d5e58baac87bc2a0bb93f44ec8db207",
    "mscoco2017.en": "43051fdfa86fd5395182e718a94ca67b1b227b9f7c79596ff0f6b813216981d2",
    "mscoco2017.de": "58277df3c75f92f7145a11b910b553d1cf82c439249d4dc237c899609eafac22",
}

# Local split name -> split name in the repository's file names.
MULTI30K_SPLITS: dict[str, str] = {
    "train": "train",
    "val": "val",
    "test2016": "test_2016_flickr",
    "test2017": "test_2017_flickr",
    "test2018": "test_2018_flickr",
    "mscoco2017": "test_2017_mscoco",
}
MULTI30K_LANGUAGES = ("en", "de")

_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download that failed: network error, not gzip, or a checksum mismatch. Names the URL."""


def _fetch_gunzipped(url: str, dest: Path, expected_sha256: str, timeout: float) -> None:
    """Download ``url`` (gzip), decompress into a temporary file beside ``dest``, verify, rename."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as response,
            gzip.GzipFile(fileobj=response) as gz,
        ):
            for chunk in iter(lambda: gz.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected_sha256:
            raise DownloadError(
                f"{url}: checksum mismatch (SHA-256 of the decompressed data is {digest.hexdigest()}, "
                f"expected {expected_sha256}); {dest} was not written"
            )
        os.replace(tmp, dest)
    except urllib.error.URLError as exc:
        reason = getattr(exc, "code", None) or exc.reason
        raise DownloadError(f"{url}: download failed ({reason})") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile and timeouts are OSErrors
        raise DownloadError(f"{url}: download failed or data is not valid gzip ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def download_multi30k(
    out_dir: str | os.PathLike[str],
    base_url: str = MULTI30K_URL,
    splits: Sequence[str] = tuple(MULTI30K_SPLITS),
    languages: Sequence[str] = MULTI30K_LANGUAGES,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the Multi30k task-1 text files into ``out_dir``, checksum-verified.

    Args:
        out_dir: where ``{split}.{lang}`` files go (created if needed).
        base_url: the directory that holds ``<remote split>.<lang>.gz``; a trailing slash is added if
            missing. Defaults to the official repository on GitHub.
        splits: local split names, a subset of ``train, val, test2016, test2017, test2018, mscoco2017``.
        languages: a subset of ``en, de``.
        timeout: seconds to wait on the network per request.

    Returns:
        The local paths, in the order of ``splits`` then ``languages``.

    Raises:
        ValueError: an unknown split or language.
        DownloadError: a network failure, bad gzip data or a checksum mismatch (nothing is left behind).
    """
    unknown = [s for s in splits if s not in MULTI30K_SPLITS]
    unknown += [lang for lang in languages if lang not in MULTI30K_LANGUAGES]
    if unknown:
        raise ValueError(
            f"unknown Multi30k split or language {unknown}; splits: {', '.join(MULTI30K_SPLITS)}; "
            f"languages: {', '.join(MULTI30K_LANGUAGES)}"
        )
    base = base_url if base_url.endswith("/") else base_url + "/"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in splits:
        for lang in languages:
            name = f"{split}.{lang}"
            dest, expected = out / name, MULTI30K_FILES[name]
            if dest.is_file():
                if sha256_file(dest) == expected:
                    logger.info("%s: already present, checksum ok", dest)
                    paths.append(dest)
                    continue
                logger.warning("%s: checksum mismatch, downloading it again", dest)
            url = f"{base}{MULTI30K_SPLITS[split]}.{lang}.gz"
            logger.info("downloading %s", url)
            _fetch_gunzipped(url, dest, expected, timeout)
            paths.append(dest)
    return paths
