"""The send writer's database work in a child process of its own.

A thread was not enough: the sqlite3 module holds the interpreter lock for everything but the
few microseconds SQLite itself runs, so the writer thread and the event loop together never used
more than one core (measured: their CPU always summed to 1.0). In a child process the batch's
encoding, binding and SQLite work run beside the event loop, which only pickles the batch
(about 3 µs a send) and reads the answer.

Protocol: one batch at a time over a pipe (multiprocessing's framing: a 4-byte big-endian size,
or -1 and an 8-byte size, then a pickle); the answer is ("ok", result) or ("error", the
SQLAlchemy error's class name, its message, and the driver's error code: SQLite's
`sqlite_errorcode` or PostgreSQL's `sqlstate`, so that a full disk is told from a lost
connection in the parent as anywhere else). If the child dies mid-batch the caller gets
`WriterDied`; the send writer then hands the same batch to a new child, marked resubmitted, and
the batch algorithm finds out what was committed (sending/batch.py).

The child's loop (`serve`): each batch through the batch algorithm in one transaction of its
database's driver (sending/sqlite.py or sending/postgres.py), then the threads of its pinned
messages joined (`Joiner`), then the answer.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import multiprocessing
import os
import pickle
import signal
import socket
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import exc as sa_exc

from smsgate.config import Settings
from smsgate.conversations.joining import Joining
from smsgate.messages.sending import batch as batches
from smsgate.messages.sending import threads
from smsgate.messages.sending.batch import Done
from smsgate.messages.sending.postgres import PostgresDriver
from smsgate.messages.sending.prepare import PreparedMessage
from smsgate.messages.sending.sqlite import SqliteDriver
from smsgate.storage.db import Database

_METHODS = multiprocessing.get_all_start_methods()
# forkserver: children forked from a small, clean server process (fast, and no copy of this
# process's threads and sockets); spawn where there is none
_CONTEXT: Any = multiprocessing.get_context("forkserver" if "forkserver" in _METHODS else "spawn")
if _CONTEXT.get_start_method() == "forkserver":
    # the fork server imports the writer once (children start in milliseconds, not a second),
    # and never the parent's __main__ (a command-line entry point)
    _CONTEXT.set_forkserver_preload(["smsgate.messages.sending.process"])

Serve = Callable[[Connection, Any], None]


class ChildError(Exception):
    """The driver's error in the child, as the parent sees it: its message and its codes
    (`sqlite_errorcode`, `sqlstate`) as attributes, where errors.database_fault reads them."""

    def __init__(self, message: str, codes: dict[str, Any]) -> None:
        super().__init__(message)
        for name, value in codes.items():
            setattr(self, name, value)


def _codes(orig: BaseException | None) -> dict[str, Any]:
    return {
        name: value
        for name in ("sqlite_errorcode", "sqlstate")
        if (value := getattr(orig, name, None)) is not None
    }


class WriterDied(RuntimeError):
    """The child ended with a batch in hand: whether that batch committed is unknown."""


class WriterProcess:
    """The parent's side: payloads go out in order and the answers are matched to them in order
    (the send writer keeps one batch out at a time) as their bytes arrive: the pipe's protocol
    reads each answer in the event-loop callback that received it, so the waiting batch resumes
    in the loop's next turn. (A reader task, as before, resumed a turn later; under load a turn
    is a few milliseconds of requests, and the next batch waited for it.) A child that dies,
    idle or not, ends the connection, so the next call starts a new one."""

    def __init__(self, serve: Serve, config: Any) -> None:
        self._serve = serve
        self._config = config
        self._process: Any = None
        self._transport: asyncio.Transport | None = None
        self._answers: _Answers | None = None
        self._waiting: collections.deque[asyncio.Future[tuple[Any, ...]]] = collections.deque()
        self._starting: asyncio.Lock | None = None

    async def start(self) -> None:
        """Start the child unless it runs: at the server's start-up (so that the first send
        does not wait for it), and again on the next call after it ended."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._answers is None or self._answers.ended or not self._process.is_alive():
                await self._start()  # none yet, or it ended: _start closes what is left of it

    async def call(self, payload: Any) -> Any:
        """Send one payload, return the child's result (or raise its error as SQLAlchemy's)."""
        await self.start()
        assert self._transport is not None
        answer_: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._waiting.append(answer_)
        # buffered by the transport if the pipe is full
        self._transport.write(_frame(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)))
        reply = await answer_
        if reply[0] == "ok":
            return reply[1]
        _, name, message, codes = reply
        error = getattr(sa_exc, name, sa_exc.DBAPIError)
        if not (isinstance(error, type) and issubclass(error, sa_exc.DBAPIError)):
            error = sa_exc.DBAPIError
        raise error(None, None, ChildError(message, codes))

    def _answered(self, reply: tuple[Any, ...]) -> None:
        waiting = self._waiting.popleft()
        if not waiting.done():
            waiting.set_result(reply)

    def _fail_waiting(self) -> None:
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.done():
                waiting.set_exception(WriterDied("the send writer process ended during a batch"))

    async def _start(self) -> None:
        await self._stop()
        parent, child = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_main,
            args=(child, self._serve, self._config),
            daemon=True,
            name="smsgate-send-writer",
        )
        await asyncio.to_thread(process.start)
        child.close()
        sock = socket.socket(fileno=os.dup(parent.fileno()))
        parent.close()
        self._transport, self._answers = await asyncio.get_running_loop().create_connection(
            lambda: _Answers(self._answered, self._fail_waiting), sock=sock
        )
        self._process = process

    async def _stop(self) -> None:
        transport, self._transport = self._transport, None
        answers, self._answers = self._answers, None
        if transport is not None and answers is not None:
            transport.close()
            await answers.closed
        process, self._process = self._process, None
        if process is not None:
            await asyncio.to_thread(process.join, 10)  # it leaves once its pipe closes
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
        self._fail_waiting()

    async def close(self) -> None:
        await self._stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


class _Answers(asyncio.Protocol):
    """The parent's end of the pipe: hands over each answer (multiprocessing's framing, then a
    pickle) as soon as its last byte has arrived."""

    def __init__(
        self, answered: Callable[[tuple[Any, ...]], None], ended: Callable[[], None]
    ) -> None:
        self._on_answer = answered
        self._on_end = ended
        self._buffer = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended = False

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = struct.unpack_from("!i", buffer)
            start = 4
            if size == -1:
                if len(buffer) < 12:
                    return
                (size,) = struct.unpack_from("!Q", buffer, 4)
                start = 12
            if len(buffer) < start + size:
                return
            reply = pickle.loads(buffer[start : start + size])  # noqa: S301 (our child)
            del buffer[: start + size]
            self._on_answer(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._on_end()
        if not self.closed.done():
            self.closed.set_result(None)


def _frame(data: bytes) -> bytes:
    if len(data) > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", len(data)) + data
    return struct.pack("!i", len(data)) + data


def _main(connection: Connection, serve: Serve, config: Any) -> None:
    # The parent decides when this process ends (by closing the pipe, or by dying): a Ctrl-C
    # or SIGTERM sent to the whole process group must not cut a batch in half.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        serve(connection, config)
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        connection.close()


def answer(connection: Connection, work: Callable[[Any], Any]) -> None:
    """The child's loop: each payload through `work`, until the parent closes the pipe."""
    while True:
        try:
            payload = pickle.loads(connection.recv_bytes())  # noqa: S301 (our parent)
        except EOFError:
            return
        try:
            reply: tuple[Any, ...] = ("ok", work(payload))
        except sa_exc.DBAPIError as exc:
            reply = ("error", type(exc).__name__, str(exc.orig), _codes(exc.orig))
        except Exception as exc:  # reported to the parent, which raises it
            reply = ("error", "DBAPIError", repr(exc), {})
        connection.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


# what the child is told: ("sqlite", (path,), settings) or ("postgresql", (dsn, schema), settings)
Config = tuple[str, tuple[str, ...], Settings]
Payload = tuple[list[PreparedMessage], bool]  # a batch, and whether it is resubmitted


def serve(connection: Connection, config: Config) -> None:
    """The writer process's loop: each batch in one transaction of the database's driver, then
    its pinned messages' threads (`Joiner`), then the answer."""
    kind, where, settings = config
    driver = SqliteDriver(*where) if kind == "sqlite" else PostgresDriver(*where)
    loop = asyncio.new_event_loop()
    joiner = Joiner(settings)

    async def write(payload: Payload) -> Done:
        batch, resubmitted = payload
        work = functools.partial(batches.write, batch=batch, resubmitted=resubmitted)
        done = await driver.transaction(work)
        if pinned := joiner.pinned(batch, done):
            await joiner.join(pinned, done)
        return done

    try:
        answer(connection, lambda payload: loop.run_until_complete(write(payload)))
    finally:
        loop.run_until_complete(driver.close())
        loop.run_until_complete(joiner.close())
        loop.close()


class Joiner:
    """The writer process joins the threads of the pinned messages it has just committed, in a
    transaction of its own on a SQLAlchemy connection of its own (conversations.joining.join, as
    everywhere else), before it answers: in the API process the join cost more of the event
    loop than the rest of a send. A failure is reported in the answer, and the API process
    then joins those messages itself (SendWriter._join_threads)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._database: Database | None = None

    @staticmethod
    def pinned(batch: list[PreparedMessage], done: Done) -> dict[str, list[Joining]]:
        """By device, the recipients of the batch's new messages pinned to one."""
        return threads.joinings(
            done.written.get(p.message["id"], (p.message, p.recipients))
            for p in batch
            if p.message["id"] in done.created
        )

    async def join(self, by_device: dict[str, list[Joining]], done: Done) -> None:
        """Join them (`pinned`'s answer), recording in `done` what was joined or why not."""
        if self._database is None:  # made in the loop it runs in
            self._database = Database(self._settings)
        try:
            await threads.join(self._database, by_device)
        except Exception as exc:
            done.join_error = f"{type(exc).__name__}: {exc}"
            return
        done.joined = {j.message_id for joinings in by_device.values() for j in joinings}

    async def close(self) -> None:
        if self._database is not None:
            await self._database.dispose()
