"""`depth-prior weights fetch|check|list` against a loopback HTTP server and real checkpoints."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import zipfile

import pytest

from depth_prior_ros.cli import main as cli_main
from depth_prior_ros.models import BackendError
from depth_prior_ros.models import weights as weights_module
from depth_prior_ros.models.weights import KnownWeights, _safe_extract, fetch

import helpers_releases as hr
from helpers_models import TINY_DA_CARD, write_jasmine_folder, write_release_pth


@pytest.fixture()
def server(tmp_path):
    """A loopback static file server on an ephemeral port, serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def student_pth(tmp_path_factory):
    return write_release_pth(tmp_path_factory.mktemp("w") / "student.pth")


def test_fetch_url_with_good_and_bad_checksum(server, tmp_path, student_pth, capsys):
    root, base = server
    payload = student_pth.read_bytes()
    (root / "student.pth").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "cache"

    code = cli_main(["weights", "fetch", f"{base}/student.pth", "--sha256", good, "--cache", str(cache)])
    out = capsys.readouterr().out
    path = cache / "urls" / "student.pth"
    assert code == 0 and path.read_bytes() == payload
    assert f"sha256={good}" in out and out.strip().splitlines()[-1] == str(path.resolve())
    # a second fetch with the same checksum is served from the cache
    assert cli_main(["weights", "fetch", f"{base}/student.pth", "--sha256", good, "--cache", str(cache)]) == 0
    assert "cached" in capsys.readouterr().out

    bad = "0" * 64
    cache2 = tmp_path / "cache2"
    code = cli_main(["weights", "fetch", f"{base}/student.pth", "--sha256", bad, "--cache", str(cache2)])
    err = capsys.readouterr().err
    assert code == 2 and "checksum mismatch" in err and good in err
    assert not list((cache2 / "urls").glob("*"))  # neither the file nor a .part is kept


def test_fetch_errors_are_one_sentence(server, tmp_path):
    root, base = server
    with pytest.raises(BackendError, match="404|Not Found"):
        fetch(f"{base}/nothing.pth", cache=tmp_path, progress=False)
    with pytest.raises(BackendError, match="neither a known weights name"):
        fetch("ftp://example.invalid/x.pth", cache=tmp_path)
    with pytest.raises(BackendError, match="not a SHA-256"):
        fetch(f"{base}/x", cache=tmp_path, sha256="abc")


def test_fetch_known_name_writes_its_card(server, tmp_path, student_pth, monkeypatch):
    root, base = server
    (root / "da.pth").write_bytes(student_pth.read_bytes())
    entry = KnownWeights("tiny-da", "ssd_student", "test", {"da.pth": f"{base}/da.pth"}, dict(TINY_DA_CARD))
    monkeypatch.setitem(weights_module.KNOWN_WEIGHTS, "tiny-da", entry)
    result = fetch("tiny-da", cache=tmp_path / "cache", progress=False)
    assert result.weights == (tmp_path / "cache" / "tiny-da" / "da.pth").resolve()
    assert json.loads(result.weights.with_suffix(".card.json").read_text())["architecture"] == "depth_anything"


def test_fetch_known_archive_unpacks_jasmine(server, tmp_path, monkeypatch):
    root, base = server
    folder = write_jasmine_folder(tmp_path / "src" / "ckpt", seed=7, card=None)
    with zipfile.ZipFile(root / "Jasmine.zip", "w") as zf:
        for f in folder.rglob("*"):
            if f.is_file():
                zf.write(f, f.relative_to(folder.parent))
    card = {"architecture": "jasmine", "input_size": [32, 64], "output_kind": "scale_depth",
            "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    entry = KnownWeights("tiny-jasmine", "jasmine", "test", {"Jasmine.zip": f"{base}/Jasmine.zip"}, card, archive=True)
    monkeypatch.setitem(weights_module.KNOWN_WEIGHTS, "tiny-jasmine", entry)
    result = fetch("tiny-jasmine", cache=tmp_path / "cache", progress=False)
    assert (result.weights / "unet").is_dir() and (result.weights / "gru.pth").is_file()
    assert (result.weights / "card.json").is_file()


def test_zip_slip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(BackendError, match="outside"):
        _safe_extract(archive, tmp_path / "target")
    assert not (tmp_path / "outside.txt").exists()


def test_weights_check_prints_card_and_parameters(student_pth, capsys):
    assert cli_main(["weights", "check", str(student_pth)]) == 0
    out = capsys.readouterr().out
    assert f"parameters: {hr.read_fixture('depth_anything_v2_vits.pth').parameters:,}" in out
    assert '"architecture": "depth_anything"' in out and "backend:    ssd_student" in out and "ok:" in out


def test_weights_check_reports_mismatch_in_one_sentence(tmp_path, capsys):
    import torch

    path = write_release_pth(tmp_path / "bad.pth", values=False)
    state = torch.load(str(path), weights_only=True)
    state["depth_head.scratch.output_conv1.weight"] = torch.zeros(3, 16, 3, 3)
    torch.save(state, str(path))
    assert cli_main(["weights", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'depth_head.scratch.output_conv1.weight'" in err and str(path) in err


def test_weights_list(capsys):
    assert cli_main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "depth-anything-vitb" in out and "jasmine" in out
