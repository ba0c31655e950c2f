"""Shared fixtures. Real servers (moto S3, Tansu Kafka, PostgreSQL) start in the fixture
modules under tests/fixtures/, on free loopback ports, once per session."""

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.postgres",
    "tests.fixtures.kafka",
]
