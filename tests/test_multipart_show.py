"""`show` prints a multipart body part by part, whatever its parts hold."""

import os

import httpx

from repost.store.multipart import parse_multipart

from .helpers import post_flow, repost, store_flows

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(5000)


def test_a_multipart_upload_with_a_binary_file_is_shown_part_by_part(tmp_path):
    db = tmp_path / "m.db"
    request = httpx.Request(
        "POST", "http://api.test/upload",
        data={"title": "Holiday snaps", "caption": "naïve ✓"},
        files={"photo": ("cat.png", PNG, "image/png")},
    )  # fmt: skip
    body = request.read()
    store_flows(db, [post_flow(body=body, headers={"Content-Type": request.headers["content-type"]})])
    result = repost("show", "1", "--db", str(db))
    assert result.exit_code == 0
    out = result.output
    assert "title = Holiday snaps" in out and "caption = naïve ✓" in out
    assert f"photo: cat.png, image/png, {len(PNG):,} bytes" in out
    assert "binary body" not in out and "PNG" not in out


def test_parts_in_odd_but_valid_spellings_are_read():
    body = (
        b"--b0\r\nCONTENT-DISPOSITION: form-data; NAME=field\r\n\r\nv1\r\n"
        b"--b0\r\nContent-Disposition: form-data; name*=UTF-8''caf%C3%A9; filename=\"a b.bin\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--b0--\r\n"
    )
    parts = parse_multipart(body, "multipart/form-data; BOUNDARY=b0")
    assert [(p.name, p.filename, p.content_type, p.data) for p in parts] == [
        ("field", None, "text/plain", b"v1"),
        ("café", "a b.bin", "application/octet-stream", b"\x00\x01\x02"),
    ]


def test_a_broken_multipart_body_falls_back_without_a_traceback(tmp_path):
    db = tmp_path / "m.db"
    store_flows(db, [post_flow(body=b"\x00\x01 no parts here", headers={"Content-Type": "multipart/form-data; boundary=zz"}),
                     post_flow(body=b"--zz\r\n\r\n", headers={"Content-Type": "multipart/form-data; boundary=\"\r\nX: y"})])  # fmt: skip
    for flow_id in ("1", "2"):
        result = repost("show", flow_id, "--db", str(db))
        assert result.exit_code == 0 and "Traceback" not in result.output
    assert parse_multipart(b"junk", "multipart/form-data") is None
