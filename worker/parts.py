"""A post in steps: the post (position 0), the replies of its thread (each to the previous),
then its first comment. Each step's platform id is kept (post_parts, under the claim) as soon as
the platform answers, so a retry resumes after the last one kept and never reposts it.

Platform-neutral: a publisher takes part by offering `reply` (threads, and the first comment
where comments are replies) and/or `comment`, each with its finder (worker/publishers/base.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from app.statuses import PartKind
from worker.publishers.base import (
    Account, Part, PermanentError, PostToPublish, PublishError, PublishResult, Publisher,
)


@dataclass(frozen=True)
class Step:
    position: int
    kind: PartKind
    text: str


def steps(post: PostToPublish) -> list[Step]:
    """Every step of `post`, in the order they are published."""
    found = [Step(0, PartKind.POST, post.content)]
    found += [Step(i, PartKind.REPLY, text) for i, text in enumerate(post.parts, start=1)]
    if post.first_comment:
        found.append(Step(len(found), PartKind.COMMENT, post.first_comment))
    return found


def label(step: Step, thread_length: int) -> str:
    """How the attempt record names a step: 'part 2 of 3' (counted from 1), 'the first comment'."""
    if step.kind == PartKind.COMMENT:
        return "the first comment"
    return f"part {step.position + 1} of {thread_length}"


def sender(publisher: Publisher, kind: PartKind) -> tuple[Callable | None, Callable | None]:
    """The publisher's method that posts a step of `kind`, and its finder (None: it cannot).
    A first comment is a reply where the platform has no comments of its own (X)."""
    if kind == PartKind.POST:
        return publisher.publish, getattr(publisher, "find_existing", None)
    if kind == PartKind.COMMENT and hasattr(publisher, "comment"):
        return publisher.comment, getattr(publisher, "find_comment", None)
    return getattr(publisher, "reply", None), getattr(publisher, "find_reply", None)


# look(step, finder): the id of `step` if an earlier attempt whose answer was lost published it,
# else None; `finder(post, account, since)` is the publisher's finder for that step, or None.
Look = Callable[[Step, "Callable | None"], "str | None"]


def publish(publisher: Publisher, post: PostToPublish, account: Account,
            look: Look | None = None) -> PublishResult:
    """Publish every step not yet published; the post's id (step 0's) once all are out.

    `look`, given when an earlier attempt's outcome is unknown, is asked about the first step
    this attempt would send. A failing step's error says which step it was."""
    all_steps = steps(post)
    thread_length = len(post.parts) + 1
    done, notes = dict(post.published_parts), []
    for step in all_steps:
        if step.position in done:
            continue
        try:
            done[step.position], note = _one(publisher, post, account, step, done, look)
        except PublishError as exc:
            if len(all_steps) > 1:
                _name(exc, label(step, thread_length), done)
            raise
        look = None  # only the step the lost attempt may have sent is looked for
        if note:
            notes.append(note if len(all_steps) == 1 else
                         f"{label(step, thread_length)}: {note}")
        if len(all_steps) > 1:
            post.keep_part(step.position, done[step.position])
    return PublishResult(done[0], note="; ".join(notes) or None)


def _one(publisher: Publisher, post: PostToPublish, account: Account, step: Step,
         done: dict[int, str], look: Look | None) -> tuple[str, str | None]:
    """The step's platform id (found, or sent now), and the platform's note on it if any."""
    send, finder = sender(publisher, step.kind)
    if send is None:
        raise PermanentError(f"{account.platform} has no replies or comments in this worker: "
                             "it cannot post a thread or a first comment; edit the post without "
                             "them", error_code="parts_unsupported")
    if step.kind != PartKind.POST:
        part = Part(step.position, step.text,
                    done[0] if step.kind == PartKind.COMMENT else done[step.position - 1],
                    root=done[0])
        send = _bound(send, part)
        finder = None if finder is None else _bound(finder, part)
    found = None if look is None else look(step, finder)
    if found is not None:
        return found, None
    result = send(post, account)
    return result.platform_post_id, result.note


def _bound(method: Callable, part: Part) -> Callable:
    """`method(post, account, part, *rest)` as `f(post, account, *rest)`."""
    return lambda post, account, *rest: method(post, account, part, *rest)


def _name(exc: PublishError, where: str, done: dict[int, str]) -> None:
    """The error says which step failed, and that the steps before it stay published."""
    if done:
        before = "the step before it stays" if len(done) == 1 else \
            f"the {len(done)} steps before it stay"
        after = f"; {before} published, never posted again"
    else:
        after = ""
    exc.message = f"{where}: {exc.message}{after}"
    exc.args = (exc.message,)
