"""download_multi30k against a local HTTP server that serves gzipped copies of the real files."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from transformer.data.corpus import sha256_file
from transformer.data.download import MULTI30K_FILES, MULTI30K_SPLITS, DownloadError, download_multi30k

# The shared data directory is a sibling of the checkout: <root>/shared/data/multi30k next to <root>/main.
MULTI30K = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "multi30k").resolve()
pytestmark = pytest.mark.skipif(
    not MULTI30K.is_dir(), reason=f"the Multi30k copy that the test serves is not at {MULTI30K}"
)
SPLITS = ("val", "test2016")  # the small ones: the test stays fast


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """Serves ``/good/<remote>.gz`` (true copies), ``/bad/`` (val.de altered) and ``/notgz/`` (plain text)."""
    root = tmp_path_factory.mktemp("www")
    for kind in ("good", "bad", "notgz"):
        (root / kind).mkdir()
    for split in SPLITS:
        for lang in ("en", "de"):
            data = (MULTI30K / f"{split}.{lang}").read_bytes()
            remote = f"{MULTI30K_SPLITS[split]}.{lang}.gz"
            (root / "good" / remote).write_bytes(gzip.compress(data))
            corrupted = data.replace(b"Hund", b"Hand", 1) if (split, lang) == ("val", "de") else data
            (root / "bad" / remote).write_bytes(gzip.compress(corrupted))
            (root / "notgz" / remote).write_bytes(data)
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_download_verifies_and_skips_present_files(tmp_path: Path, server: tuple[str, list[str]]) -> None:
    base, requests = server
    requests.clear()
    paths = download_multi30k(tmp_path, base_url=base + "/good", splits=SPLITS)  # no trailing slash: added
    assert [p.name for p in paths] == ["val.en", "val.de", "test2016.en", "test2016.de"]
    for path in paths:
        assert path.read_bytes() == (MULTI30K / path.name).read_bytes()
        assert sha256_file(path) == MULTI30K_FILES[path.name]
    assert sorted(requests) == sorted(f"/good/{MULTI30K_SPLITS[s]}.{lang}.gz" for s in SPLITS for lang in ("en", "de"))

    requests.clear()
    assert download_multi30k(tmp_path, base_url=base + "/good/", splits=SPLITS) == paths
    assert requests == []  # everything present with the right checksum: nothing fetched

    (tmp_path / "val.en").write_text("tampered\n", encoding="utf-8")
    download_multi30k(tmp_path, base_url=base + "/good/", splits=["val"], languages=["en"])
    assert requests == ["/good/val.en.gz"]  # a present file with a wrong checksum is fetched again
    assert sha256_file(tmp_path / "val.en") == MULTI30K_FILES["val.en"]


def test_corrupted_download_is_rejected_without_leftovers(tmp_path: Path, server: tuple[str, list[str]]) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match=r"val\.de\.gz: checksum mismatch"):
        download_multi30k(tmp_path, base_url=base + "/bad/", splits=["val"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["val.en"]  # val.en was fine; no val.de, no .part


def test_network_and_format_errors(tmp_path: Path, server: tuple[str, list[str]]) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match="404"):
        download_multi30k(tmp_path, base_url=base + "/missing/", splits=["val"])
    with pytest.raises(DownloadError, match="not valid gzip"):
        download_multi30k(tmp_path, base_url=base + "/notgz/", splits=["val"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown Multi30k split"):
        download_multi30k(tmp_path, base_url=base, splits=["test2099"])


def test_checksums_match_the_shared_copy() -> None:
    """The table in the code agrees with the provenance-documented files."""
    assert set(MULTI30K_FILES) == {f"{s}.{lang}" for s in MULTI30K_SPLITS for lang in ("en", "de")}
    for name, digest in MULTI30K_FILES.items():
        assert sha256_file(MULTI30K / name) == digest, name


def test_cli_download(tmp_path: Path, server: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    from transformer.cli import main

    base, _ = server
    argv = ["download", "multi30k", str(tmp_path / "m30k"), "--base-url", base + "/good/", "--splits", "val"]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "m30k").iterdir()) == ["val.de", "val.en"]
    assert main(["download", "multi30k", str(tmp_path / "bad"), "--base-url", base + "/bad/", "--splits", "val"]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("transformer download: error: ") and "checksum mismatch" in last
    assert "Traceback" not in err
