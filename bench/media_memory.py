"""Peak memory of a worker publishing one large video: a sparse MP4 (1 GiB by default, a hole
on disk, no RAM) stored as media, posted to the fake LinkedIn through the Videos API (4 MB parts
with ETags), by one `worker_trigger.py` run as cron starts it. Reports the worker's peak RSS
(VmHWM, and the kernel's ru_maxrss of the child) against the 150 MB target, and checks that every
byte reached the fake.

The post is inserted directly: 1 GiB is over LinkedIn's 500 MB schedule-time limit, and this
measures the worker's streaming, not the limit.

    python bench/media_memory.py [--size BYTES] [--smoke]
"""
from __future__ import annotations

import resource
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PeakRss, bench_database, emit, log_folder, note, parser, start_worker, utcnow, wait_all,
    worker_env,
)
from tests.fakes import running_fakes  # noqa: E402
from tests.fakes import media as files  # noqa: E402

TARGET_MB = 150
AUTHOR = "urn:li:organization:5515715"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024 ** 3, help="the video's bytes (default 1 GiB)")
    args = p.parse_args()
    if args.smoke:
        args.size = 50 * 1024 * 1024
    with running_fakes() as fakes, bench_database(args.database_url, "media") as db, \
            log_folder(args.keep_logs, "media") as logs, \
            tempfile.TemporaryDirectory(prefix="bench-media-") as media_dir:
        fakes.linkedin.keep_bodies_up_to = 1024  # the fake keeps no 1 GiB either
        post_id = _post_with_video(db, media_dir, args.size)
        env = {**worker_env(db, SCHEDULER_MEDIA_DIR=media_dir,
                            SCHEDULER_INSTAGRAM_POLL_INTERVAL=0.1), **fakes.env()}
        note(f"one LinkedIn post with a {args.size / 1024 ** 2:.0f} MiB sparse MP4; one worker run")
        rss = PeakRss()
        proc = start_worker(env, logs / "worker.log")
        codes = wait_all([proc], timeout=1800, rss=rss, interval=0.05)
        child_max_mb = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
        status = db.scalar("SELECT status FROM post_details WHERE id = %s", (post_id,))
        assets = [a for a in fakes.linkedin.assets.values() if a["kind"] == "video"]
        received = assets[0]["bytes"] if assets else 0
    peak = max(filter(None, (rss.peak_mb, child_max_mb)))
    ok = codes == [0] and status == "published" and received == args.size
    emit({"bench": "media_memory", "smoke": args.smoke, "video_bytes": args.size,
          "peak_rss_mb": peak, "vmhwm_mb": rss.peak_mb, "ru_maxrss_mb": child_max_mb,
          "target_mb": TARGET_MB, "met": peak < TARGET_MB, "bytes_at_fake": received,
          "post_status": status, "exit_codes": codes, "ok": ok})


def _post_with_video(db, media_dir: str, size: int) -> str:
    from app.db import make_engine, make_session_factory
    from app.mediafile import probe
    from app.models import Media, PostDetail, PostMedia, PostSchedule
    from app.services.accounts import add_account, create_company

    engine = make_engine(db.settings())
    sessions = make_session_factory(engine)
    now = utcnow()
    company, _ = create_company(sessions, "Bench", now)
    account = add_account(sessions, company.id, "linkedin", AUTHOR, "bench-token", now)
    media_id, post_id = str(uuid.uuid4()), str(uuid.uuid4())
    path = Path(media_dir) / company.id / media_id
    path.parent.mkdir(parents=True)
    files.sparse_mp4(path, size, seconds=60)
    with open(path, "rb") as file:
        found = probe(file)
    with sessions.begin() as session:
        session.add(Media(id=media_id, company_id=company.id, mime_type=found.mime_type, bytes=size,
                          sha256="0" * 64, width=found.width, height=found.height,
                          duration_seconds=found.duration_seconds,
                          storage_key=f"{company.id}/{media_id}", created_at=now))
        session.add(PostDetail(id=post_id, company_id=company.id, social_account_id=account.id,
                               group_id=str(uuid.uuid4()), content="A large video",
                               media_urls=[], status="pending", created_at=now, updated_at=now))
        session.flush()
        session.add(PostMedia(post_detail_id=post_id, position=0, media_id=media_id))
        session.add(PostSchedule(post_detail_id=post_id, run_at=now - timedelta(seconds=1),
                                 status="pending", created_at=now, updated_at=now))
    engine.dispose()
    return post_id


if __name__ == "__main__":
    main()
