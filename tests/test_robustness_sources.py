"""Robustness of sources, downloads and their messages (issue 8, parts 1, 2 and 6).

Every case is a real run: a real HTTP server on 127.0.0.1 that misbehaves on purpose, real
files and devices, real tmpfs mounts for a full or read-only disk, a real loss of permission,
and the real snakemake CLI where the case is about the workflow. Datasets are tiny (counts
30/10) and deadlines short, so the suite runs in seconds. docs/robustness.md lists the
cases; each test's name after ``test_`` is its id there.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import ssl
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import sha256_file
from serving import Server, serving
from workflows import snakemake, write_config

from keras_repro.config.schema import ConfigError
from keras_repro.data.dataset import DatasetError, build_dataset, content_identity
from keras_repro.data.decoding import read_idx_gz
from keras_repro.data.download import MARKER_NAME, DownloadError, download_dataset
from keras_repro.data.synthetic import IDX_NAMES, make_arrays, write_idx_files, write_keras_npz
from keras_repro.files import UnsafePath, WriteError

COUNTS = {"train": 30, "test": 10}
FAST = {"timeout": 5.0, "attempts": 2, "backoff_seconds": 0.01}
IMAGES = "/idx/" + IDX_NAMES["train_images"]
PRECIOUS = b"a file outside results/ that no download may touch\n"


@pytest.fixture
def tiny() -> dict[str, np.ndarray]:
    return make_arrays(n_train=COUNTS["train"], n_test=COUNTS["test"])


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    path = tmp_path / "sentinel.txt"
    path.write_bytes(PRECIOUS)
    return path


def idx_source(server: Server, arrays: dict, name: str = "mirror", checksums: bool = True) -> dict:
    files = write_idx_files(arrays, server.root / "idx")
    if not checksums:
        for entry in files.values():
            entry["sha256"] = None
    return {"name": name, "format": "idx", "location": server.url + "idx/", "files": files}


@contextmanager
def serving_files(tmp_path: Path, arrays: dict) -> Iterator[dict]:
    """A server of its own for ``arrays`` (for a case that needs other counts)."""
    with serving(tmp_path / "served") as state:
        yield idx_source(state, arrays)


def local_idx_source(folder: Path, arrays: dict, location: str | None = None) -> dict:
    files = write_idx_files(arrays, folder)
    return {"name": "local", "format": "idx", "location": location or str(folder), "files": files}


def download(sources: list[dict], output: Path, arrays: dict, **settings: object) -> dict:
    options = {**FAST, **settings}
    counts = options.pop("counts", COUNTS)
    return download_dataset(
        "synthetic",
        sources,
        output / "source.json",
        content_identity(arrays),
        counts,
        **options,  # type: ignore[arg-type]
    )


def assert_clean(output: Path) -> None:
    """Nothing written: no output folder, no staging folder left beside it."""
    assert not output.exists()
    if output.parent.exists():
        assert list(output.parent.iterdir()) == [], "staging folders were left behind"


def one_line(message: str) -> str:
    assert "\n" not in message and "Traceback" not in message, message
    return message


@contextmanager
def mounted_tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``where`` (skipped where this machine forbids mounts)."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def download_cli(
    record: Path, config: Path, *prefix: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "keras_repro.data.download",
            "synthetic",
            str(record),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def cli_config(path: Path, source: dict, arrays: dict) -> Path:
    config = {
        "dataset": "synthetic",
        "datasets": {
            "synthetic": {
                "counts": COUNTS,
                "content_sha256": content_identity(arrays),
                "sources": [source],
            }
        },
        "download": {"timeout": 5, "attempts": 1, "backoff_seconds": 0},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def workflow_config(workdir: Path, source: dict, arrays: dict) -> None:
    write_config(
        workdir,
        dataset="synthetic",
        datasets={
            "synthetic": {
                "counts": COUNTS,
                "content_sha256": content_identity(arrays),
                "sources": [source],
            }
        },
        seeds=[1, 2],
        repeats=2,
        epochs=1,
    )


# -- 1. Names and locations: nothing outside the output folder is written, sources only read --


def test_name_dotdot_snakemake(tmp_path, tiny, sentinel):
    """A `../…` file name that resolves to a file outside results/ from both the source folder
    and the staging folder (the old code truncated it to 0 bytes)."""
    source = local_idx_source(tmp_path / "local", tiny)
    escape = "../" * 40 + str(sentinel).lstrip("/")
    source["files"]["train_images"]["name"] = escape
    workdir = tmp_path / "work"
    workflow_config(workdir, source, tiny)
    result = snakemake(workdir, "--until", "download")
    assert result.returncode != 0
    assert "datasets.synthetic.sources[0].files.train_images.name" in result.stdout
    assert "A plain file name" in result.stdout
    assert sentinel.read_bytes() == PRECIOUS
    assert not (workdir / "results").exists(), "refused before any job"


def test_name_absolute_direct_local(tmp_path, tiny, sentinel):
    """download_dataset called directly (no config validation) with an absolute file name."""
    source = local_idx_source(tmp_path / "local", tiny)
    source["files"]["train_images"]["name"] = str(sentinel)
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.files\.train_images\.name"):
        download([source], output, tiny)
    assert sentinel.read_bytes() == PRECIOUS
    assert_clean(output)


def test_name_dotdot_direct_file_url(tmp_path, tiny, sentinel, server):
    """A file:// source with a `../` name, second after a working source: refused before
    anything is fetched from either."""
    flaky = idx_source(server, tiny, "first")
    local = local_idx_source(tmp_path / "local", tiny, (tmp_path / "local").as_uri())
    local["files"]["train_images"]["name"] = "../" * 40 + str(sentinel).lstrip("/")
    with pytest.raises(ConfigError, match=r"sources\[1\]\.files\.train_images\.name"):
        download([flaky, local], tmp_path / "out" / "synthetic", tiny)
    assert sentinel.read_bytes() == PRECIOUS
    assert server.requests == [], "refused before anything was fetched"


def test_location_ftp_snakemake(tmp_path, tiny):
    """An ftp:// location is refused by the schema before any job, not read as a folder."""
    source = local_idx_source(tmp_path / "local", tiny, "ftp://127.0.0.1/synthetic/")
    workdir = tmp_path / "work"
    workflow_config(workdir, source, tiny)
    result = snakemake(workdir, "--until", "download")
    assert result.returncode != 0
    assert "datasets.synthetic.sources[0].location: 'ftp://127.0.0.1/synthetic/'" in result.stdout
    assert "other schemes (ftp://, ...) are refused" in result.stdout
    assert not (workdir / "results").exists(), "refused before any job"


def test_location_ftp_direct(tmp_path, tiny):
    source = local_idx_source(tmp_path / "local", tiny, "ftp://127.0.0.1/synthetic/")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.location: 'ftp://"):
        download([source], tmp_path / "out" / "synthetic", tiny)


def test_name_is_the_record_name(tmp_path, tiny):
    """A file called source.json would be overwritten by the download's own record."""
    source = local_idx_source(tmp_path / "local", tiny)
    source["files"]["test_labels"]["name"] = "source.json"
    with pytest.raises(ConfigError, match=r"test_labels\.name: 'source\.json' is the name"):
        download([source], tmp_path / "out" / "synthetic", tiny)


def test_same_name_for_two_roles(tmp_path, tiny):
    source = local_idx_source(tmp_path / "local", tiny)
    source["files"]["test_labels"]["name"] = source["files"]["train_labels"]["name"]
    with pytest.raises(ConfigError, match="named for more than one role"):
        download([source], tmp_path / "out" / "synthetic", tiny)


def test_local_source_symlink_accepted(tmp_path, tiny):
    """A local source file may be a symlink (e.g. a Keras cache pointing at a shared copy): it
    is only read, and the copy in the output folder is a regular file."""
    source = local_idx_source(tmp_path / "shared", tiny)
    folder = tmp_path / "cache"
    folder.mkdir()
    for entry in source["files"].values():
        (folder / entry["name"]).symlink_to(tmp_path / "shared" / entry["name"])
    output = tmp_path / "out" / "synthetic"
    download([{**source, "location": str(folder)}], output, tiny)
    images = output / IDX_NAMES["train_images"]
    assert images.is_file() and not images.is_symlink()
    assert (tmp_path / "shared" / IDX_NAMES["train_images"]).stat().st_size > 0


def test_redirect_to_ftp_refused(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["redirect:ftp://127.0.0.1:21/train-images-idx3-ubyte.gz"]
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError, match=r"redirected to ftp://127\.0\.0\.1:21/.*only http"):
        download([source], output, tiny)
    assert server.count(IDX_NAMES["train_images"]) == 1, "a refused redirect is not retried"
    assert_clean(output)


def test_redirect_to_file_refused(tmp_path, tiny, server, sentinel):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = [f"redirect:{sentinel.as_uri()}"]
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(
        DownloadError, match=r"HTTP 302 .*Redirection to url 'file://.* not allowed"
    ):
        download([source], output, tiny)
    assert sentinel.read_bytes() == PRECIOUS
    assert_clean(output)


def test_redirect_within_http_followed(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    shutil.copy(server.root / IMAGES.lstrip("/"), server.root / "moved.gz")
    server.faults[IMAGES] = [f"redirect:{server.url}moved.gz"]
    record = download([source], tmp_path / "out" / "synthetic", tiny)
    assert record["content_sha256"] == content_identity(tiny)
    assert server.requests[:2] == [IMAGES, "/moved.gz"]


def test_output_folder_with_user_files_cli(tmp_path, tiny):
    """`keras-repro-download synthetic ./source.json` in a folder full of the user's files."""
    config = cli_config(tmp_path / "config.yaml", local_idx_source(tmp_path / "local", tiny), tiny)
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    (home / "notes.txt").write_text("mine")
    (home / "thesis" / "chapter1.tex").write_text("mine too")
    before = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    result = download_cli(Path("./source.json"), config, cwd=home)
    assert result.returncode == 1
    error = one_line(result.stderr.strip().splitlines()[-1])
    assert "holds notes.txt, thesis, which no previous download wrote" in error
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == before
    assert (home / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "home", "local"]


def test_previous_download_replaced(tmp_path, tiny, server):
    """A previous download is replaced, also after Snakemake deleted its source.json; the
    files it wrote are deleted, nothing else."""
    output = tmp_path / "out" / "synthetic"
    download([idx_source(server, tiny)], output, tiny)
    (output / "source.json").unlink()  # what Snakemake does before rerunning the job
    files = write_keras_npz(tiny, server.root / "mnist.npz")
    npz = {"name": "keras", "format": "npz", "location": server.url, "files": files}
    record = download([npz], output, tiny)
    assert record["name"] == "keras"
    assert sorted(p.name for p in output.iterdir()) == sorted(
        ["mnist.npz", "source.json", MARKER_NAME]
    )
    (output / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError, match=r"holds notes\.txt, which no previous download"):
        download([npz], output, tiny)
    assert (output / "notes.txt").read_text() == "mine"


def test_symlink_in_previous_download_refused(tmp_path, tiny, server, sentinel):
    """An entry of the output folder that is a symlink is never ours: refused, target intact."""
    output = tmp_path / "out" / "synthetic"
    download([idx_source(server, tiny)], output, tiny)
    images = output / IDX_NAMES["train_images"]
    images.unlink()
    images.symlink_to(sentinel)
    with pytest.raises(DownloadError, match="which no previous download wrote"):
        download([idx_source(server, tiny)], output, tiny)
    assert images.is_symlink() and sentinel.read_bytes() == PRECIOUS


def test_tampered_record_name_refused_by_build(tmp_path, tiny, server, sentinel):
    """build_dataset reads only files inside the download folder, whatever source.json says."""
    output = tmp_path / "out" / "synthetic"
    download([idx_source(server, tiny)], output, tiny)
    record = json.loads((output / "source.json").read_text())
    record["files"]["train_images"]["name"] = str(sentinel)
    (output / "source.json").write_text(json.dumps(record))
    with pytest.raises(UnsafePath, match="not a plain file name"):
        build_dataset(output / "source.json", tmp_path / "d.npz", tmp_path / "m.json", {})


@pytest.fixture
def https_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A real HTTPS server on 127.0.0.1 with a certificate made for it, trusted by the client
    through SSL_CERT_FILE (read by Python's default TLS context)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving(tmp_path / "served-tls", context) as state:
        yield state


def test_https_download_accepted(tmp_path, tiny, https_server):
    record = download([idx_source(https_server, tiny)], tmp_path / "out" / "synthetic", tiny)
    assert record["content_sha256"] == content_identity(tiny)
    assert https_server.url.startswith("https://")


def test_https_redirect_to_http_refused(tmp_path, tiny, https_server, server):
    """A redirect from https to http (a downgrade) is refused, even to the same file."""
    source = idx_source(https_server, tiny)
    idx_source(server, tiny)
    server_url = f"{server.url}idx/{IDX_NAMES['train_images']}"
    https_server.faults[IMAGES] = [f"redirect:{server_url}"]
    with pytest.raises(DownloadError, match=r"redirected to http://.*never https to http"):
        download([source], tmp_path / "out" / "synthetic", tiny)
    assert server.requests == []


def test_https_drip_cut_at_deadline(tmp_path, tiny, https_server):
    """The deadline also cuts a TLS connection (its socket is shut beneath the TLS layer)."""
    source = idx_source(https_server, tiny)
    https_server.faults[IMAGES] = ["drip"]
    https_server.drip_seconds = 0.3
    started = time.monotonic()
    with pytest.raises(DownloadError, match="not complete within the 1 s deadline"):
        download([source], tmp_path / "out" / "synthetic", tiny, timeout=1, attempts=1)
    assert time.monotonic() - started < 2.0


# -- 2. Bounds: size caps from the counts, a wall-clock deadline per attempt, progress --------


def test_endless_body_cut_at_cap(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["endless"]
    output = tmp_path / "out" / "synthetic"
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"sent more than the 89,307 bytes .* cut off"):
        download([source], output, tiny)
    assert time.monotonic() - started < 3
    assert server.count(IDX_NAMES["train_images"]) == 1, "not retried"
    assert_clean(output)


def test_endless_chunked_body_cut_at_cap(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["endless-chunked"]
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError, match="sent more than the 89,307 bytes"):
        download([source], output, tiny)
    assert_clean(output)


def test_huge_content_length_refused_up_front(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["huge-length"]
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(
        DownloadError, match=r"announces 1,000,000\.0 MB, more than the 89,307 bytes"
    ):
        download([source], output, tiny)
    assert server.count(IDX_NAMES["train_images"]) == 1
    assert_clean(output)


def test_huge_content_length_without_counts(tmp_path, tiny, server):
    """Without counts a split is bounded at 1,000,000 examples: 792 MB for the images file."""
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["huge-length"]
    with pytest.raises(DownloadError, match=r"more than the 791\.9 MB the dataset's counts"):
        download([source], tmp_path / "out" / "synthetic", tiny, counts=None)


def test_short_content_length_fails_checksum(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["short-length"]
    with pytest.raises(DownloadError, match=r"sha256 [0-9a-f]{64}, expected"):
        download([source], tmp_path / "out" / "synthetic", tiny)
    assert server.count(IDX_NAMES["train_images"]) == 1


def test_drip_cut_at_deadline_with_progress(tmp_path, tiny, server, caplog):
    """A server that drips one byte per second is cut off at the deadline, each attempt, and
    progress (bytes, rate) is logged while it drips."""
    caplog.set_level(logging.INFO, logger="keras_repro")
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["drip", "drip"]
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"not complete within the 1\.5 s deadline"):
        download([source], tmp_path / "out" / "synthetic", tiny, timeout=1.5)
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 4.5, f"two attempts of 1.5 s each took {elapsed:.1f} s"
    assert server.count(IDX_NAMES["train_images"]) == 2
    progress = [r.getMessage() for r in caplog.records if "bytes/s" in r.getMessage()]
    assert len(progress) >= 4, progress
    assert any(" bytes of " in line for line in progress), progress


def test_drip_in_headers_cut_at_deadline(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["drip-headers"]
    server.drip_seconds = 0.05
    started = time.monotonic()
    with pytest.raises(DownloadError, match="not complete within the 1 s deadline"):
        download([source], tmp_path / "out" / "synthetic", tiny, timeout=1, attempts=1)
    assert time.monotonic() - started < 2.0


def test_silent_server_cut_at_deadline(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["silent"]
    started = time.monotonic()
    with pytest.raises(DownloadError, match="not complete within the 1 s deadline"):
        download([source], tmp_path / "out" / "synthetic", tiny, timeout=1, attempts=1)
    assert time.monotonic() - started < 2.0


def test_slow_but_in_time_accepted_with_progress(tmp_path, tiny, server, caplog):
    caplog.set_level(logging.INFO, logger="keras_repro")
    source = idx_source(server, tiny)
    server.faults[IMAGES] = ["slow"]
    server.drip_seconds = 0.15
    record = download([source], tmp_path / "out" / "synthetic", tiny, timeout=3)
    assert record["content_sha256"] == content_identity(tiny)
    assert any("bytes/s" in r.getMessage() for r in caplog.records)


def write_gzip_bomb(path: Path, announced: tuple[int, ...], megabytes: int) -> None:
    """A valid IDX header announcing ``announced``, then ``megabytes`` MiB of zeros: one gzip
    member per MiB, about 1 KiB each, so the file inflates about 1000-fold."""
    header = struct.pack(f">HBB{len(announced)}I", 0, 8, len(announced), *announced)
    member = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    with path.open("wb") as out:
        out.write(gzip.compress(header, mtime=0))
        for _ in range(megabytes):
            out.write(member)


def test_gzip_bomb_memory_bounded(tmp_path):
    """Decoding an 80 KB file that inflates to 80 MiB costs no more than the file's header
    announces (23 KB), measured as the peak resident memory of a fresh process."""
    bomb = tmp_path / "bomb.gz"
    write_gzip_bomb(bomb, (30, 28, 28), 80)
    script = (
        "import resource, sys\n"
        "from keras_repro.data.decoding import DatasetError, read_idx_gz, max_idx_bytes\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    read_idx_gz(sys.argv[1], max_idx_bytes('train_images', {'train': 30}))\n"
        "except DatasetError as error:\n"
        "    print(error)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=60
    )
    message, grown_mb = result.stdout.strip().splitlines()
    assert "inflates to more than the 23,536 bytes its header (30, 28, 28) announces" in message
    assert int(grown_mb) < 20, f"peak memory grew by {grown_mb} MB"


def test_gzip_bomb_download_names_url(tmp_path, tiny, server):
    """The bomb from a mirror (no file checksum; the content identity would decide): refused
    while inflating, and the message names the URL, not the staging path."""
    source = idx_source(server, tiny, checksums=False)
    write_gzip_bomb(server.root / IMAGES.lstrip("/"), (30, 28, 28), 60)
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError) as raised:
        download([source], output, tiny)
    message = str(raised.value)
    assert f"{server.url}idx/train-images-idx3-ubyte.gz: inflates to more than" in message
    assert "/.synthetic." not in message, "no staging path"
    assert_clean(output)


def test_gzip_header_announcing_too_much(tmp_path):
    """An IDX header announcing more examples than the counts is refused before inflating."""
    bomb = tmp_path / "big.gz"
    write_gzip_bomb(bomb, (60000, 28, 28), 1)
    with pytest.raises(DatasetError, match=r"header \(60000, 28, 28\) announces 47\.0 MB"):
        read_idx_gz(bomb, 16 + 30 * 784)


def test_npz_member_bomb_refused_before_reading(tmp_path, tiny, server):
    """An npz (80 KB) whose x_train entry inflates to 78.3 MB: its declared size is checked
    against the counts before a byte of it is inflated."""
    archive = server.root / "mnist.npz"
    write_keras_npz(tiny, archive)
    with zipfile.ZipFile(archive) as original:
        others = {n: original.read(n) for n in original.namelist() if n != "x_train.npy"}
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bomb:
        with bomb.open("x_train.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "|u1", "fortran_order": False, "shape": (100_000, 28, 28)}
            )
            for _ in range(78):
                member.write(bytes(784 * 1280))
        for name, data in others.items():
            bomb.writestr(name, data)
    source = {
        "name": "keras",
        "format": "npz",
        "location": server.url,
        "files": {"archive": {"name": "mnist.npz", "sha256": sha256_file(archive)}},
    }
    with pytest.raises(
        DownloadError,
        match=r"mnist\.npz: x_train is uint8 \(100000, 28, 28\): it inflates to 78\.3 MB, more",
    ):
        download([source], tmp_path / "out" / "synthetic", tiny)


def test_local_file_too_big_refused_before_copy(tmp_path, tiny):
    source = local_idx_source(tmp_path / "local", tiny)
    images = tmp_path / "local" / IDX_NAMES["train_images"]
    images.write_bytes(os.urandom(200_000))
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError, match=r"200,000 bytes, more than the 89,307 bytes"):
        download([source], output, tiny)
    assert_clean(output)


def test_file_url_endless_device_cut_at_cap(tmp_path, tiny):
    """file:///dev/zero: a local 'file' that never ends (its size says 0)."""
    source = {
        "name": "zero",
        "format": "npz",
        "location": "file:///dev/",
        "files": {"archive": {"name": "zero", "sha256": "0" * 64}},
    }
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError, match=r"sent more than the 203,517 bytes .* cut off"):
        download([source], output, tiny)
    assert_clean(output)


def test_local_device_refused(tmp_path, tiny):
    source = {
        "name": "zero",
        "format": "npz",
        "location": "/dev",
        "files": {"archive": {"name": "zero", "sha256": "0" * 64}},
    }
    with pytest.raises(DownloadError, match="not a regular file: /dev/zero"):
        download([source], tmp_path / "out" / "synthetic", tiny)


# -- 6. Messages: one line naming the path the user knows, or the source's URL ----------------


def test_full_disk_download_direct(tmp_path):
    """A real 64 KiB tmpfs as the results folder: the download says which file could not be
    written and how much space it needed, and leaves nothing behind."""
    arrays = make_arrays()  # 300/100 examples: the images file alone is larger than the disk
    with mounted_tmpfs(tmp_path / "disk", "64k") as disk, serving_files(tmp_path, arrays) as src:
        output = disk / "download" / "synthetic"
        with pytest.raises(WriteError) as raised:
            download([src], output, arrays, counts={"train": 300, "test": 100})
        message = one_line(str(raised.value))
        images = output / IDX_NAMES["train_images"]
        assert message.startswith(f"cannot write {images}: no space left on the device (")
        size = (tmp_path / "served" / "idx" / IDX_NAMES["train_images"]).stat().st_size
        assert f"{size:,} bytes needed" in message and f"free in {disk}" in message
        assert list((disk / "download").iterdir()) == [], "no staging folder left"


def test_full_disk_build_dataset_snakemake(tmp_path, tiny):
    """The real workflow with results/data on a 16 KiB tmpfs: build_dataset fails with one
    line naming results/data/synthetic/dataset.npz, no traceback."""
    source = local_idx_source(tmp_path / "local", tiny)
    workdir = tmp_path / "work"
    workflow_config(workdir, source, tiny)
    with mounted_tmpfs(workdir / "results" / "data", "16k"):
        result = snakemake(workdir, "--until", "build_dataset")
        assert result.returncode != 0, result.stdout
    log = (workdir / "results/logs/build_dataset/synthetic.log").read_text()
    error = [line for line in log.splitlines() if " ERROR " in line]
    assert len(error) == 1 and "Traceback" not in log, log
    assert (
        "cannot write results/data/synthetic/dataset.npz: no space left on the device" in error[0]
    )
    assert "needed" in error[0] and "free in" in error[0]


def test_read_only_disk_download(tmp_path, tiny):
    local = local_idx_source(tmp_path / "local", tiny)
    with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as disk:
        with pytest.raises(WriteError) as raised:
            download([local], disk / "synthetic", tiny)
        assert one_line(str(raised.value)) == (
            f"cannot write {disk / 'synthetic'}: the file system is read-only"
        )


def test_permission_denied_cli(tmp_path, tiny):
    """The CLI without write permission on the output's parent: one line, exit status 1. As
    root, CAP_DAC_OVERRIDE is dropped so that the permission bits count (a real EACCES)."""
    config = cli_config(tmp_path / "config.yaml", local_idx_source(tmp_path / "local", tiny), tiny)
    parent = tmp_path / "shared"
    parent.mkdir()
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        os.chown(parent, 65534, 65534)
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    parent.chmod(0o555)
    result = download_cli(parent / "synthetic" / "source.json", config, *prefix)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {parent / 'synthetic'}: permission denied for user {os.getuid()}"
    )
    assert list(parent.iterdir()) == []


def test_decode_error_names_url(tmp_path, tiny, server):
    source = idx_source(server, tiny, checksums=False)
    (server.root / IMAGES.lstrip("/")).write_bytes(gzip.compress(b"not an IDX file"))
    with pytest.raises(DownloadError) as raised:
        download([source], tmp_path / "out" / "synthetic", tiny)
    assert f"{server.url}idx/train-images-idx3-ubyte.gz: not an unsigned-byte IDX file" in str(
        raised.value
    )
    assert "/.synthetic." not in str(raised.value)


def test_checksum_error_names_url(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    source["files"]["train_labels"]["sha256"] = "0" * 64
    with pytest.raises(
        DownloadError, match=rf"{server.url}idx/train-labels-idx1-ubyte\.gz: sha256"
    ):
        download([source], tmp_path / "out" / "synthetic", tiny)


# -- What already worked, and must keep working ------------------------------------------------


def test_wrong_checksum_not_retried(tmp_path, tiny, server):
    source = idx_source(server, tiny)
    source["files"]["train_images"]["sha256"] = "0" * 64
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError, match="wrong or corrupt file"):
        download([source], output, tiny)
    assert server.count(IDX_NAMES["train_images"]) == 1
    assert_clean(output)


def test_http_404_not_retried_next_source(tmp_path, tiny, server):
    gone = {**idx_source(server, tiny, "gone"), "location": server.url + "nowhere/"}
    record = download([gone, idx_source(server, tiny)], tmp_path / "out" / "synthetic", tiny)
    assert record["name"] == "mirror"
    assert server.requests.count("/nowhere/" + IDX_NAMES["train_images"]) == 1


def test_http_500_then_ok(tmp_path, tiny, server):
    server.faults[IMAGES] = ["500"]
    download([idx_source(server, tiny)], tmp_path / "out" / "synthetic", tiny)
    assert server.count(IDX_NAMES["train_images"]) == 2


def test_truncated_body_retried_then_refused(tmp_path, tiny, server):
    server.faults[IMAGES] = ["truncate", "truncate"]
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError, match=r"truncated body.*\(after 2 attempts\)"):
        download([idx_source(server, tiny)], output, tiny)
    assert_clean(output)


def test_all_sources_down(tmp_path, tiny, server):
    down = {**idx_source(server, tiny, "down"), "location": "http://127.0.0.1:9/"}
    broken = idx_source(server, tiny, "broken")
    server.faults[IMAGES] = ["500", "500"]
    output = tmp_path / "out" / "synthetic"
    with pytest.raises(DownloadError) as raised:
        download([down, broken], output, tiny)
    message = str(raised.value)
    assert "every source failed" in message and "Connection refused" in message
    assert "- broken (" in message and "HTTP 500" in message
    assert_clean(output)
