"""The media store: uploads streamed to disk with their checksum, what a file is read from its
bytes (corrupt, lying, audio-only and oversized files refused), per company, and signed URLs."""
from __future__ import annotations

import hashlib
import io
import re
import time
from dataclasses import replace

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from app.services import media as store
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


# -- posts with stored media ------------------------------------------------------------------

def schedule(api, account_id, **fields):
    return api.post("/schedule-post", json={"socialAccountId": account_id, "content": "Hi",
                                            "scheduledAt": "2030-01-01T09:00:00Z", **fields})


def test_a_post_takes_media_ids_and_urls_with_alt_text(sqlite, tenant, media_api):
    media_id = upload(media_api, files.image()).get_json()["id"]
    answer = schedule(media_api, tenant.account_id,
                      mediaIds=[{"id": media_id, "altText": "a red square"}],
                      mediaUrls=["https://example.com/a.png",
                                 {"url": "https://example.com/b.png", "altText": "b"}])
    assert answer.status_code == 201, answer.get_json()
    (post,) = answer.get_json()["posts"]
    assert post["media"] == [
        {"mediaId": media_id, "url": None, "altText": "a red square"},
        {"mediaId": None, "url": "https://example.com/a.png", "altText": None},
        {"mediaId": None, "url": "https://example.com/b.png", "altText": "b"}]
    assert post["mediaUrls"] == ["https://example.com/a.png", "https://example.com/b.png"]
    assert media_api.get(f"/scheduled-posts/{post['id']}").get_json()["media"] == post["media"]


def test_media_in_use_by_a_pending_post_cannot_be_deleted(db, tenant, media_api):
    media_id = upload(media_api, files.image()).get_json()["id"]
    post = schedule(media_api, tenant.account_id, mediaIds=[media_id]).get_json()["posts"][0]
    refused = media_api.delete(f"/media/{media_id}")
    assert refused.status_code == 409 and post["id"] in refused.get_json()["error"]["message"]
    assert media_api.delete(f"/scheduled-posts/{post['id']}").status_code == 200  # cancelled
    assert media_api.delete(f"/media/{media_id}").status_code == 200


def test_another_companys_media_id_in_a_post_is_404(db, tenant, media_api):
    other = make_tenant(db, name="Other")
    theirs = upload(media_api, files.image(), key=other.api_key).get_json()["id"]
    answer = schedule(media_api, tenant.account_id, mediaIds=[theirs])
    assert answer.status_code == 404 and theirs in answer.get_json()["error"]["message"]


def test_editing_replaces_the_media(sqlite, tenant, media_api):
    first = upload(media_api, files.image()).get_json()["id"]
    second = upload(media_api, files.image("JPEG")).get_json()["id"]
    post = schedule(media_api, tenant.account_id, mediaIds=[first]).get_json()["posts"][0]
    edited = media_api.patch(f"/scheduled-posts/{post['id']}",
                             json={"mediaIds": [{"id": second, "altText": "new"}]})
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["media"] == [{"mediaId": second, "url": None, "altText": "new"}]
    assert media_api.delete(f"/media/{first}").status_code == 200  # no longer used


def test_signed_urls_serve_the_file_until_they_expire(sqlite, tenant, media_api):
    data = files.image()
    media_id = upload(media_api, data).get_json()["id"]
    settings = media_api.app.extensions["scheduler"]["settings"]
    key = store.signing_key(settings)
    url = store.signed_url("http://api.example", key, media_id, int(time.time()) + 60)
    path = url.removeprefix("http://api.example")
    answer = media_api.get(path, key=None)
    assert answer.status_code == 200 and answer.data == data
    assert answer.headers["Content-Type"] == "image/png"
    assert media_api.get(path.replace("signature=", "signature=0"), key=None).status_code == 404
    expired = store.signed_url("", key, media_id, int(time.time()) - 1)
    assert media_api.get(expired, key=None).status_code == 404


# -- the dashboard ------------------------------------------------------------------------------

def test_thumbnails_on_the_post_page_and_in_the_calendar(db, tenant, media_api):
    from PIL import Image

    image_id = upload(media_api, files.image("PNG", (640, 480))).get_json()["id"]
    video_id = upload(media_api, files.mp4(12, 640, 360), "clip.mp4").get_json()["id"]
    post = schedule(media_api, tenant.account_id, mediaIds=[
        {"id": image_id, "altText": "a red square"}, video_id]).get_json()["posts"][0]
    client = media_api.app.test_client()
    page = client.get("/dashboard").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    client.post("/dashboard/login", data={"api_key": tenant.api_key, "csrf": token},
                headers={"Origin": "http://localhost"})
    thumb = f"/dashboard/media/{image_id}/thumbnail"
    detail = client.get(f"/dashboard/posts/{post['id']}").get_data(as_text=True)
    assert f'src="{thumb}"' in detail and 'alt="a red square"' in detail
    assert "video 12 s" in detail
    calendar = client.get("/dashboard/calendar?view=month&date=2030-01-01").get_data(as_text=True)
    assert f'src="{thumb}"' in calendar
    answer = client.get(thumb)
    assert answer.status_code == 200 and answer.mimetype == "image/png"
    assert Image.open(io.BytesIO(answer.data)).size == (160, 120)
    assert client.get(f"/dashboard/media/{video_id}/thumbnail").status_code == 404
    other = make_tenant(db, name="Other")
    theirs = upload(media_api, files.image(), key=other.api_key).get_json()["id"]
    assert client.get(f"/dashboard/media/{theirs}/thumbnail").status_code == 404
