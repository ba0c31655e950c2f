import json
import logging

from bibev.cli.logs import JsonFormatter, SecretFilter, configure_logging, mask_secrets


def make_record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("bibev.test", logging.INFO, __file__, 1, message, args, None)


def test_secret_filter_masks_known_secrets_in_message_and_args():
    record = make_record("connecting with %s to %s", "tok-123456", "postgresql://u:pw-secret@h/db")
    SecretFilter(["tok-123456", "pw-secret"]).filter(record)
    assert record.getMessage() == "connecting with *** to postgresql://u:***@h/db"


def test_secret_filter_ignores_too_short_values():
    record = make_record("abc and x")
    SecretFilter(["x", ""]).filter(record)
    assert record.getMessage() == "abc and x"


def test_json_formatter_writes_one_object_with_extras():
    record = make_record("flushed %d messages", 1000)
    record.vin = "5YJ3E1EA7KF000001"
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "flushed 1000 messages"
    assert data["level"] == "info"
    assert data["logger"] == "bibev.test"
    assert data["vin"] == "5YJ3E1EA7KF000001"


def test_mask_secrets_adds_to_the_configured_filter(capsys):
    configure_logging(verbosity=0, log_format="text", secrets=["first-secret"])
    mask_secrets(["later-secret"])
    logging.getLogger("bibev.test").info("first-secret and later-secret")
    assert "first-secret" not in capsys.readouterr().err
    record = make_record("first-secret and later-secret")
    (handler,) = logging.getLogger("bibev").handlers
    handler.filter(record)
    assert record.getMessage() == "*** and ***"


def test_other_libraries_warnings_are_formatted_and_masked(capsys):
    for _ in range(2):  # a second command in this process replaces the first one's handler
        configure_logging(verbosity=0, log_format="text", secrets=["hunter2-pw"])
    pool = logging.getLogger("urllib3.connectionpool")
    pool.warning("Connection pool is full, discarding connection: %s", "user:hunter2-pw@s3")
    pool.info("not shown: other libraries speak from WARNING up")
    logging.getLogger("bibev.test").info("bibev at INFO")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    pool_full = "Connection pool is full, discarding connection: user:***@s3"
    assert lines[0].endswith(f" WARNING urllib3.connectionpool: {pool_full}")
    assert lines[1].endswith(" INFO bibev.test: bibev at INFO")
