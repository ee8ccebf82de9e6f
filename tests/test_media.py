"""The media store: uploads streamed to disk with their checksum, what a file is read from its
bytes (corrupt, lying, audio-only and oversized files refused), per company, and signed URLs."""
from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from conftest import ApiClient, make_tenant
from fakes import media as files


@pytest.fixture
def media_api(request, tmp_path, tenant):
    db = next(request.getfixturevalue(n) for n in ("db", "sqlite") if n in request.fixturenames)
    db.settings = replace(db.settings, media_dir=str(tmp_path / "media"), media_max_bytes=200_000)
    client = ApiClient(db, tenant.api_key)
    yield client
    client.close()


def upload(api, data: bytes, name: str = "photo.png", key="default"):
    return api.post("/media", key=key, data={"file": (io.BytesIO(data), name)},
                    content_type="multipart/form-data")


def test_an_image_is_stored_with_its_checksum_and_size(sqlite, tenant, media_api, tmp_path):
    data = files.image("PNG", (120, 80))
    answer = upload(media_api, data)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["mimeType"] == "image/png" and (body["width"], body["height"]) == (120, 80)
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["bytes"] == len(data)
    stored = list((tmp_path / "media" / tenant.company_id).iterdir())
    assert [p.read_bytes() for p in stored] == [data]
    assert [m["id"] for m in media_api.get("/media").get_json()["items"]] == [body["id"]]


def test_a_video_has_its_duration_and_size_read_from_its_boxes(sqlite, tenant, media_api):
    body = upload(media_api, files.mp4(12.5, 1920, 1080), "clip.mp4").get_json()
    assert body["mimeType"] == "video/mp4" and body["durationSeconds"] == 12.5
    assert (body["width"], body["height"]) == (1920, 1080)


@pytest.mark.parametrize("data, name, field, why", [
    (files.image("PNG")[:60], "cut.png", "file", "damaged"),
    (b"GIF89a" + b"\x00" * 40, "bad.gif", "file", "damaged"),
    (b"<html>not an image</html>", "photo.jpg", "file", "first bytes"),
    (files.mp4(video=False), "song.mp4", "file", "no video track"),
    (files.FTYP + b"\x00\x00\x00\x08free", "cut.mp4", "file", "movie header"),
])
def test_bad_files_are_refused_naming_why(sqlite, tenant, media_api, tmp_path, data, name, field, why):
    answer = upload(media_api, data, name)
    assert answer.status_code == 422, answer.get_json()
    assert why in answer.get_json()["error"]["fields"][field]
    assert list((tmp_path / "media" / tenant.company_id).iterdir()) == []  # nothing kept


def test_a_lying_name_does_not_decide_the_type(sqlite, tenant, media_api):
    body = upload(media_api, files.image("JPEG"), "movie.mp4").get_json()
    assert body["mimeType"] == "image/jpeg"


def test_a_file_over_the_cap_is_refused_while_it_streams(sqlite, tenant, media_api, tmp_path):
    consumed = []

    class Counting(io.RawIOBase):
        """A 10 MB body that counts what the server reads of it."""
        def __init__(self):
            self.left = 10_000_000
        def readable(self):
            return True
        def readinto(self, buffer):
            n = min(len(buffer), self.left)
            buffer[:n] = b"\x00" * n
            self.left -= n
            consumed.append(n)
            return n

    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    environ = EnvironBuilder(path="/media", method="POST", headers={
        "Authorization": f"Bearer {tenant.api_key}",
        "Content-Type": f"multipart/form-data; boundary={boundary}"}).get_environ()
    environ.pop("CONTENT_LENGTH", None)  # chunked: the server cannot know the size in advance
    environ.update({"wsgi.input": io.BufferedReader(_Chain(head, Counting())),
                    "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
                    "wsgi.input_terminated": True})
    answer = Response.from_app(media_api.app, environ)
    assert answer.status_code == 413, answer.get_json()
    assert "SCHEDULER_MEDIA_MAX_BYTES" in answer.get_json()["error"]["message"]
    assert sum(consumed) < 1_000_000  # stopped soon after the 200 kB cap, not at the end
    assert list((tmp_path / "media" / tenant.company_id).iterdir()) == []


class _Chain(io.RawIOBase):
    def __init__(self, head: bytes, rest):
        self.head, self.rest = head, rest
    def readable(self):
        return True
    def readinto(self, buffer):
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        return self.rest.readinto(buffer)


def test_a_declared_length_over_the_cap_is_refused_before_reading(sqlite, tenant, media_api):
    answer = upload(media_api, b"\xff\xd8\xff" + b"\x00" * 300_000, "big.jpg")
    assert answer.status_code == 413


def test_no_file_field_and_not_multipart(sqlite, tenant, media_api):
    answer = media_api.post("/media", data={"other": (io.BytesIO(b"x"), "x.png")},
                            content_type="multipart/form-data")
    assert answer.status_code == 422 and answer.get_json()["error"]["fields"] == {"file": "required"}
    assert media_api.post("/media", json={"file": "x"}).status_code == 415


def test_another_companys_media_is_not_found(db, tenant, media_api):
    media_id = upload(media_api, files.image()).get_json()["id"]
    other = make_tenant(db, name="Other")
    assert media_api.delete(f"/media/{media_id}", key=other.api_key).status_code == 404
    assert media_api.get("/media", key=other.api_key).get_json()["items"] == []
    assert media_api.delete(f"/media/{media_id}").status_code == 200
    assert media_api.get("/media").get_json()["items"] == []
