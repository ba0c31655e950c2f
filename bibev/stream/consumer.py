"""The ``bibev stream`` consumer: Kafka → per-VIN buffers → ``temp/``, at least once.

Commit protocol (also in docs/stream.md): auto-commit and the automatic offset store are off.
After each batch the consumer writes the batch's bad records to quarantine (durable), then
marks the batch's offsets as done, flushes the buffers that are full or old (durable), and
commits, asynchronously, for each partition the offset after the last record such that every
earlier record is written or quarantined (``StreamBuffers.committable``); an offset counts as
committed only once the broker's answer has come back (``on_commit``, served by
``consume()``). On partition revocation it flushes the buffers holding that partition's
records, sends a commit, and forgets the partition; on SIGTERM/SIGINT it stops polling,
flushes everything, commits (waiting a bounded time for the answer) and closes (bounded too).
A crash, or a commit that never lands, loses nothing: what was not committed is read again
(duplicates are allowed, compaction removes them).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from bibev.errors import ConfigError, ProviderAuthError, ProviderError, StorageError
from bibev.log_repeats import RepeatFilter
from bibev.storage import Storage
from bibev.stream.batch import paused_gc, read_batch
from bibev.stream.buffers import StreamBuffers, TopicPartition, VinBuffer
from bibev.stream.options import StreamOptions, client_error_text, kafka_config
from bibev.stream.records import LineBuilder
from bibev.stream.sink import StreamSink, Written
from bibev.stream.stats import StatsSnapshot, StreamCounts, stats_line

logger = logging.getLogger(__name__)
# Broker-side errors worth logging at most this often (the client reports them in a loop).
ERROR_LOG_EVERY = 30.0


class ConnectionFailures(logging.Filter):
    """librdkafka logs a failed connection (``FAIL``: a broker down, a restart) at ERROR; the
    client retries it by itself, so it is a WARNING here (alerts on ERROR stay quiet)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.getMessage().startswith("FAIL "):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


kafka_logger = logging.getLogger("bibev.stream.kafka")
kafka_logger.addFilter(ConnectionFailures())
kafka_logger.addFilter(RepeatFilter(ERROR_LOG_EVERY))
# Batches of buffers being written while the loop goes on (each may be many files).
MAX_WRITES_IN_FLIGHT = 4


@dataclass
class StreamResult:
    """The outcome of one run: counts, and partitions left uncommitted (empty after a drain)."""

    counts: StreamCounts
    uncommitted: list[TopicPartition]


def _kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError:
        raise ConfigError("bibev stream needs confluent-kafka: install bibev[kafka]") from None
    return confluent_kafka


class StreamConsumer:
    """One consumer process (or one in-process consumer in tests and benchmarks)."""

    def __init__(
        self,
        storage: Storage,
        options: StreamOptions,
        *,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.storage = storage
        self.options = options
        self.stop = stop or threading.Event()
        self.clock = clock
        self.on_progress = on_progress
        self.buffers = StreamBuffers(options.buffer_size)
        # One topic named outright (not a ^regex subscription): records need no topic check.
        one_topic = len(options.topics) == 1 and not options.topics[0].startswith("^")
        self.builder = LineBuilder(options.encoding, one_topic=one_topic)
        self.sink = StreamSink(storage, workers=options.write_workers)
        self.counts = StreamCounts()
        self._consumer: Any = None
        self._aborting = False
        self._errors_logged: dict[int, float] = {}
        self._fatal: Any = None
        # Credentials or permissions refused (``AUTH_ERRORS``): the run ends with exit 3.
        self._refused: Any = None
        # A subscribed topic the brokers do not have: ends a batch run (exit 2).
        self._missing_topic: str | None = None
        self._last_commit = 0.0
        # The commit sent last and not yet answered (``on_commit``): when it was sent, or None.
        self._commit_sent: float | None = None
        self._closing = False
        self._last_age_check = 0.0
        # Writes in flight, oldest first: (future, buffers, why, records).
        self._inflight: deque[tuple[Future[Written], list[VinBuffer], str, int]] = deque()
        self._inflight_records = 0

    # -- run ------------------------------------------------------------------------------

    def run(self) -> StreamResult:
        """Consume until stopped (signal, ``max_messages``, ``max_seconds``), then drain."""
        kafka = _kafka()
        try:
            self.sink.check()
        except StorageError as exc:
            self.sink.close()
            raise StorageError(f"not started, nothing consumed: {exc}") from exc
        config = kafka_config(self.options)
        config.update(error_cb=self._on_error, logger=kafka_logger, on_commit=self._on_commit)
        try:
            self._consumer = kafka.Consumer(config)
        except kafka.KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            text = error.str() if hasattr(error, "str") else str(error)
            problem = client_error_text(text, self.options)
            raise ConfigError(f"invalid Kafka consumer configuration: {problem}") from None
        try:
            self._consumer.subscribe(
                list(self.options.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        except kafka.KafkaException as exc:
            self._consumer.close()
            raise ConfigError(f"cannot subscribe to {self.options.topics}: {exc}") from exc
        logger.info(
            "consuming %s from %s as group %s",
            ", ".join(self.options.topics),
            self.options.bootstrap_servers,
            self.options.group_id,
        )
        started = self.clock()
        try:
            self._loop(started)
            self._check_errors()  # reported during the last consume() of a batch run
            uncommitted = self._drain()
        except StorageError as exc:
            self._abort()
            unsaved = "what was not stored is not committed (read again on restart)"
            raise StorageError(f"stopped; {unsaved}: {exc}") from exc
        except BaseException:
            self._abort()
            raise
        finally:
            self.counts.seconds = self.clock() - started
        return StreamResult(self.counts, uncommitted)

    def _loop(self, started: float) -> None:
        options = self.options
        deadline = started + options.max_seconds if options.max_seconds else None
        stats_at = started + options.stats_interval
        previous = StatsSnapshot(started, 0, 0)
        while not self.stop.is_set():
            self._check_errors()
            wanted = options.batch_size
            if options.max_messages is not None:
                wanted = min(wanted, options.max_messages - self.counts.messages)
                if wanted <= 0:
                    break
            now = self.clock()
            timeout = options.poll_timeout
            if deadline is not None:
                if now >= deadline:
                    break
                timeout = max(0.0, min(timeout, deadline - now))
            with paused_gc():
                self._consume(wanted, timeout)
            self._housekeeping()
            now = self.clock()
            if now >= stats_at:
                current = StatsSnapshot(now, self.counts.messages, self.counts.bytes)
                self._log_stats(previous, current)
                previous, stats_at = current, now + options.stats_interval

    def _check_errors(self) -> None:
        """End the run on what waiting cannot mend (see ``_on_error``)."""
        if self._fatal is not None:
            text = client_error_text(self._fatal.str(), self.options)
            raise ProviderError(f"Kafka client failed: {text}")
        if self._refused is not None:
            text = client_error_text(self._refused.str(), self.options)
            raise ProviderAuthError(
                f"Kafka refused the credentials or permissions ({self._refused.name()}): {text}; "
                "check sasl.*/ssl.* in --consumer-config and the ACLs of the group and topics"
            )
        if self._missing_topic is not None:
            raise ConfigError(
                f"topic {self._missing_topic!r} does not exist on {self.options.bootstrap_servers} "
                "(a batch run does not wait for it to be created)"
            )

    # -- records --------------------------------------------------------------------------

    def _consume(self, wanted: int, timeout: float) -> None:
        messages = self._consumer.consume(num_messages=wanted, timeout=timeout)
        if messages:
            if self.on_progress is not None:
                self.on_progress(self.counts.messages + len(messages))
            self._process(messages)

    def _process(self, messages: Sequence[Any]) -> None:
        """Buffer a batch; quarantine its bad records; then mark its offsets done."""
        now = self.clock()
        batch = read_batch(self.builder, messages, int(time.time() * 1000))
        for error, topic in batch.errors:
            self._on_message_error(error, topic)
        add = self.buffers.add_lines
        for vin, lines in batch.groups.items():
            add(vin, lines.by_day(), lines.first_offsets(), now)
        self.counts.messages += batch.count
        self.counts.bytes += batch.size
        self._finish_batch(batch.rejected, batch.last, batch.first)

    def _finish_batch(
        self,
        rejected: list[str],
        done: dict[TopicPartition, int],
        first: dict[TopicPartition, int],
    ) -> None:
        """Quarantine (durably), then mark the batch's offsets done, then write full buffers:
        in this order, so that a commit never covers a record that is not on storage."""
        if rejected:
            key = self.sink.write_quarantine(rejected)
            self.counts.quarantined += len(rejected)
            logger.warning("quarantined %d bad records in %s", len(rejected), key)
        for tp, offset in done.items():
            self.buffers.advance(tp, offset, first[tp])
        if self.buffers.ready:
            self._write(self.buffers.take_ready(), "full")

    def _flush(self, vins: Sequence[str], why: str) -> None:
        self._write(self.buffers.take(vins), why)

    def _write(self, taken: list[VinBuffer], why: str) -> None:
        """Start writing ``taken``; the loop goes on meanwhile. Their offsets stay pending
        until ``_settle`` has seen the write succeed, so a commit never covers them before."""
        if not taken:
            return
        records = sum(buffer.count for buffer in taken)
        self._inflight.append((self.sink.submit(taken), taken, why, records))
        self._inflight_records += records
        # Bound the memory held by writes in flight (and how far the loop runs ahead).
        while len(self._inflight) > MAX_WRITES_IN_FLIGHT or (
            self._inflight_records > self.options.max_buffered
        ):
            self._settle_one()

    def _reap(self) -> None:
        """Account for the writes that have finished (without waiting)."""
        while self._inflight and self._inflight[0][0].done():
            self._settle_one()

    def _settle(self) -> None:
        """Wait for every write in flight."""
        while self._inflight:
            self._settle_one()

    def _settle_one(self) -> None:
        future, taken, why, records = self._inflight.popleft()
        self._inflight_records -= records
        written = future.result()  # a StorageError ends the run, without a commit
        self.buffers.flushed(taken)
        self.counts.flushes += len(taken)
        self.counts.files += written.files
        self.counts.written_bytes += written.bytes
        self.counts.vins.update(buffer.vin for buffer in taken)
        logger.debug("flushed %d buffers (%s): %d files", len(taken), why, written.files)

    def _housekeeping(self, *, force_commit: bool = False) -> None:
        now = self.clock()
        if now - self._last_age_check >= 0.2:
            self._last_age_check = now
            aged = self.buffers.aged(now - self.options.flush_interval)
            if aged:
                self._flush(aged, "interval")
        if self.buffers.buffered > self.options.max_buffered:
            self._flush(self.buffers.oldest(self.options.max_buffered // 2), "memory")
        self._reap()
        if force_commit or now - self._last_commit >= self.options.commit_interval:
            self._commit()

    # -- offsets --------------------------------------------------------------------------

    def _commit(self, tps: Sequence[TopicPartition] | None = None) -> None:
        """Send a commit of what is safe to commit, without waiting for the broker: its answer
        comes to ``_on_commit`` from ``consume()``/``poll()``, and only then are the offsets
        taken as committed. While one commit is unanswered no other is sent, unless it has
        gone unanswered for ``commit_timeout`` seconds (a broker that does not answer): it is
        then sent again. A commit that never lands only means records read again."""
        kafka = _kafka()
        now = self.clock()
        self._last_commit = now
        if self._commit_sent is not None:
            if now - self._commit_sent < self.options.commit_timeout:
                return
            logger.warning(
                "commit not answered after %.0f s (broker unreachable?); sending it again: "
                "the records are stored, nothing is lost",
                now - self._commit_sent,
            )
        offsets = self.buffers.to_commit(tps)
        if not offsets:
            return
        partitions = [kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=True)
        except kafka.KafkaException as exc:
            self._log_kafka_error(exc.args[0], "commit failed, will try again")
            return
        self._commit_sent = now
        logger.debug("commit sent: %s", offsets)

    def _on_commit(self, error: Any, partitions: list[Any]) -> None:
        """The broker's answer to a commit (called by the client inside ``consume()``,
        ``poll()`` and ``close()``): the partitions without an error are committed."""
        self._commit_sent = None
        kafka = _kafka()
        if error is not None and error.code() == kafka.KafkaError._NO_OFFSET:
            return
        done = self.buffers.done
        committed = {
            (p.topic, p.partition): p.offset
            for p in partitions
            if p.error is None and p.offset >= 0 and (p.topic, p.partition) in done
        }
        self.buffers.mark_committed(committed)
        if committed:
            self.counts.commits += 1
            logger.debug("committed %s", committed)
        failed = [p for p in partitions if p.error is not None]
        if error is not None or failed:
            first = error if error is not None else failed[0].error
            self._log_kafka_error(first, f"commit failed for {_names(failed)}, will try again")

    def _wait_for_commit(self, timeout: float) -> bool:
        """Commit what is safe and wait up to ``timeout`` seconds for the broker's answer,
        serving the client's callbacks meanwhile; ``True`` when nothing is left uncommitted."""
        deadline = self.clock() + timeout
        self._commit_sent = None  # a commit unanswered so far is sent again
        self._commit()
        while self._commit_sent is not None and self.clock() < deadline:
            message = self._consumer.poll(min(0.1, max(0.0, deadline - self.clock())))
            if message is not None and message.error() is not None:
                self._on_message_error(message.error(), message.topic())
            # Any record polled here is not stored, so its offset is never committed: it is
            # read again by the next run.
            if self._commit_sent is None and self.buffers.to_commit():
                self._commit()  # a partial failure: try the rest again
        return not self.buffers.to_commit()

    # -- rebalance and errors (called by the client inside consume() and close()) -------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        logger.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        if not self._aborting:
            self._flush(self.buffers.holding(tps), "revoked")
            self._settle()
        if not self._closing:
            # Sent before this process rejoins the group, so the broker has it before the
            # next owner reads where to start (not waited for: a callback cannot poll).
            self._commit_sent = None
            self._commit(tps)
        self.buffers.forget(tps)
        logger.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        if not self._aborting:
            self._flush(self.buffers.holding(tps), "lost")
            self._settle()
        self.buffers.forget(tps)
        logger.warning("lost %s (another consumer reads them again)", _names(partitions))

    def _on_error(self, error: Any) -> None:
        """An error of the client (``error_cb``, or a message's): a fatal one, or refused
        credentials or permissions, end the run (``_check_errors``); anything else (a broker
        unreachable, a timeout) is waited out."""
        if error.fatal():
            self._fatal = error
        elif error.code() in _auth_errors():
            self._refused = self._refused or error
            return
        self._log_kafka_error(error, "retrying")

    def _log_kafka_error(self, error: Any, what: str) -> None:
        """A warning, at most once per ``ERROR_LOG_EVERY`` seconds per error code."""
        now = self.clock()
        if now - self._errors_logged.get(error.code(), -ERROR_LOG_EVERY) >= ERROR_LOG_EVERY:
            self._errors_logged[error.code()] = now
            logger.warning("Kafka: %s (%s)", error.str(), what)

    def _on_message_error(self, error: Any, topic: str | None = None) -> None:
        kafka = _kafka()
        code = error.code()
        if code == kafka.KafkaError._PARTITION_EOF:
            return
        if code in (kafka.KafkaError.UNKNOWN_TOPIC_OR_PART, kafka.KafkaError._UNKNOWN_TOPIC):
            options = self.options
            if options.max_messages is not None or options.max_seconds is not None:
                self._missing_topic = self._missing_topic or topic or "?"
                return
            self._log_kafka_error(error, "nothing is read from it until it is created")
            return
        self._on_error(error)

    # -- the end --------------------------------------------------------------------------

    def _drain(self) -> list[TopicPartition]:
        """Flush everything, commit, close (the SIGTERM path and the end of a batch run);
        returns the partitions whose last records could not be committed. Bounded in time:
        a broker that does not answer costs at most ``commit_timeout`` + ``close_timeout``."""
        logger.info("draining: flushing %d buffered records", self.buffers.buffered)
        self._write(self.buffers.take_all(), "drain")
        self._settle()
        timeout = self.options.commit_timeout
        if not self._wait_for_commit(timeout):
            logger.warning(
                "could not commit the last offsets within %.0f s; the stored records will be "
                "read again by the next run (duplicates, nothing lost)",
                timeout,
            )
        uncommitted = self.buffers.uncommitted()
        self._close()
        self.sink.close()
        return uncommitted

    def _abort(self) -> None:
        """After an error: commit only what is already durable, close, keep the error."""
        if self._aborting:
            return
        self._aborting = True
        try:
            self._wait_for_commit(self.options.commit_timeout)
        except Exception as exc:
            logger.debug("commit after error failed: %s", exc)
        self._close()
        self.sink.close()

    def _close(self) -> None:
        """Leave the group, waiting at most ``close_timeout`` seconds: librdkafka's close
        waits for the broker, without a limit, while a commit is unanswered. On time out the
        process goes on (and exits) without it; the group reassigns the partitions once the
        session times out."""
        self._closing = True
        failure: list[BaseException] = []

        def close() -> None:
            try:
                self._consumer.close()
            except BaseException as exc:  # handed to the caller below
                failure.append(exc)

        closer = threading.Thread(target=close, name="bibev-stream-close", daemon=True)
        closer.start()
        closer.join(self.options.close_timeout)
        if closer.is_alive():
            logger.warning(
                "the Kafka client did not close within %.0f s (broker unreachable?); going on "
                "without it: the group reassigns the partitions after session.timeout.ms",
                self.options.close_timeout,
            )
            return
        if failure:
            if self._aborting:
                logger.debug("closing the consumer failed: %s", failure[0])
            else:
                raise failure[0]

    def _log_stats(self, previous: StatsSnapshot, current: StatsSnapshot) -> None:
        logger.info(
            "%s",
            stats_line(
                previous,
                current,
                buffered=self.buffers.buffered,
                vins=self.buffers.vins,
                lag=self._lag(),
                counts=self.counts,
            ),
        )

    def _lag(self) -> dict[TopicPartition, int | None]:
        lag: dict[TopicPartition, int | None] = {}
        try:
            assigned = self._consumer.assignment()
        except Exception:
            return lag
        for partition in assigned:
            tp = (partition.topic, partition.partition)
            try:
                _low, high = self._consumer.get_watermark_offsets(partition, cached=True)
                done = self.buffers.done.get(tp)
                position = done + 1 if done is not None else None
                if position is None:
                    position = self._consumer.position([partition])[0].offset
            except Exception:
                high = position = -1
            known = high is not None and high >= 0 and position is not None and position >= 0
            lag[tp] = max(0, high - position) if known else None
        return lag


def _auth_errors() -> frozenset[int]:
    """librdkafka's codes for refused credentials or permissions."""
    error = _kafka().KafkaError
    return frozenset(
        getattr(error, name)
        for name in (
            "_AUTHENTICATION",
            "SASL_AUTHENTICATION_FAILED",
            "TOPIC_AUTHORIZATION_FAILED",
            "GROUP_AUTHORIZATION_FAILED",
            "CLUSTER_AUTHORIZATION_FAILED",
        )
        if hasattr(error, name)
    )


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the consumer then drains) instead of killing the
    process; the previous handlers come back afterwards. Only the main thread can do this."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logger.warning("%s again: already draining", name)
        else:
            logger.info("%s: stopping, draining buffers", name)
            stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_stream(
    storage: Storage,
    options: StreamOptions,
    *,
    stop: threading.Event | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> StreamResult:
    """Consume ``options.topics`` into ``temp/`` until ``stop`` is set or a limit is reached,
    then drain (see the module docstring). ``on_progress(received)`` is called as each batch
    arrives, with the number of records received so far."""
    return StreamConsumer(storage, options, stop=stop, on_progress=on_progress).run()
