"""Media files for tests and benchmarks, made on the spot: images by Pillow, MP4s box by box
(ftyp, mdat, moov with mvhd and one track per handler), and sparse MP4s of any size that take
no disk or memory for their media data."""
from __future__ import annotations

import io
import struct
from pathlib import Path


def image(fmt: str = "PNG", size: tuple[int, int] = (64, 48), frames: int = 1) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    first = Image.new("RGB", size, (200, 30, 30))
    if frames > 1:
        rest = [Image.new("RGB", size, (30, 30, 200 - i)) for i in range(frames - 1)]
        first.save(out, fmt, save_all=True, append_images=rest, duration=100, loop=0)
    else:
        first.save(out, fmt)
    return out.getvalue()


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _mvhd(seconds: float, timescale: int = 1000) -> bytes:
    body = bytes(4) + struct.pack(">IIII", 0, 0, timescale, int(seconds * timescale)) + bytes(80)
    return _box(b"mvhd", body)


def _track(handler: bytes, width: int, height: int) -> bytes:
    tkhd = bytes(4) + bytes(72) + struct.pack(">II", width << 16, height << 16)  # version 0: 84
    hdlr = bytes(4) + bytes(4) + handler + bytes(12) + b"\x00"
    return _box(b"trak", _box(b"tkhd", tkhd) + _box(b"mdia", _box(b"hdlr", hdlr)))


def moov(seconds: float = 10.0, width: int = 1280, height: int = 720, video: bool = True) -> bytes:
    tracks = (_track(b"vide", width, height) if video else b"") + _track(b"soun", 0, 0)
    return _box(b"moov", _mvhd(seconds) + tracks)


FTYP = _box(b"ftyp", b"isom" + bytes(4) + b"isomiso2mp41")


def mp4(seconds: float = 10.0, width: int = 1280, height: int = 720, video: bool = True,
        data: bytes = b"\x00" * 1024) -> bytes:
    return FTYP + _box(b"mdat", data) + moov(seconds, width, height, video)


def sparse_mp4(path: Path, total_bytes: int, seconds: float = 60.0, width: int = 1280,
               height: int = 720) -> Path:
    """An MP4 of `total_bytes` whose mdat is a hole in the file (a 64-bit box size)."""
    tail = moov(seconds, width, height)
    mdat_size = total_bytes - len(FTYP) - len(tail)
    with open(path, "wb") as out:
        out.write(FTYP + struct.pack(">I4sQ", 1, b"mdat", mdat_size))
        out.seek(len(FTYP) + mdat_size)
        out.write(tail)
    return path


class MediaHost:
    """A web server holding files at paths, for mediaUrls: `files[path] = bytes`; also
    `redirects[path] = location` (302), `slow[path] = seconds` before answering; any other
    path is 404. Records the paths asked for."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.slow: dict[str, float] = {}
        self.asked: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                import time
                host.asked.append(self.path)
                time.sleep(host.slow.get(self.path, 0))
                if self.path in host.redirects:
                    self.send_response(302)
                    self.send_header("Location", host.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = host.files.get(self.path)
                try:
                    self.send_response(200 if body is not None else 404)
                    self.send_header("Content-Length", str(len(body or b"")))
                    self.end_headers()
                    self.wfile.write(body or b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> "MediaHost":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
