"""The queue's SQL shared by every table claimed with SKIP LOCKED and fenced by `lock_token`:
`post_schedule` (publishing, driven by worker/queue.py) and `jobs` (everything else). It lives
under app/ so the API can enqueue jobs without importing the worker."""
