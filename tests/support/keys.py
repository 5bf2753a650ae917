"""The one SECRET_KEY of the tests: long enough for the start-up check (32 bytes)."""

TEST_SECRET_KEY = "test-secret-key-0123456789abcdef"
