"""The one settings object: read from the environment, validated at start-up."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.outbound import UrlPolicy, parse_name_servers, parse_networks

EMBEDDED_DATABASE_URL = "sqlite:///odock-sync.sqlite3"
EMBEDDED_BROKER_URL = "sqla+sqlite:///odock-sync-broker.sqlite3"
EMBEDDED_SECRET_FILE = "odock-sync-secret.key"  # noqa: S105 (a path)
# SECRET_KEY keys HMAC-SHA256 (links, sessions, form tokens) and, through HKDF-SHA256, Fernet
# and keyed hashes: a key shorter than the hash's 32-byte output weakens all of them (RFC 2104
# section 3). The generated key (token_urlsafe(32)) is 43 bytes.
SECRET_KEY_MIN_BYTES = 32
MAKE_A_KEY = "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
SECRET_KEY_ADVICE = (
    f"must be at least {SECRET_KEY_MIN_BYTES} bytes of random text, e.g. the output of {MAKE_A_KEY}"
)
# A server database is shared by web and worker processes on many hosts (docs: DESIGN.md): a
# key generated into each one's working directory would leave each unable to read the secrets
# another stored or check the links another signed. Only the embedded default generates one.
SECRET_KEY_REQUIRED = (
    "must be set when DATABASE_URL is a server database, to the same key on every host and "
    f"process (web, worker, beat, commands); generate one with {MAKE_A_KEY}"
)


class SettingsError(Exception):
    """A setting is missing or has a bad value; the message names it."""


class Settings(BaseSettings):
    """Every knob of odock-sync; each field is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = EMBEDDED_DATABASE_URL
    # Connections each process keeps open to PostgreSQL (as many again may be opened for a
    # burst and closed after); every web worker, task worker and beat has its own pool.
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    # Hot fixed-shape reads (SCIM gets and searches) run as server-side prepared statements,
    # planned once per connection. Turn off behind a pooler in transaction mode that cannot
    # keep prepared statements (PgBouncer before 1.21, or without max_prepared_statements).
    database_prepared_reads: bool = True
    # How long an embedded (SQLite) database call waits for another writer before the request
    # is answered 503 with Retry-After.
    sqlite_busy_timeout: float = Field(default=30.0, gt=0, le=600)
    # How long a web request's statement waits for a lock another session holds, and how long
    # any one statement of it may run, on PostgreSQL, before the request is answered 503 with
    # Retry-After (the IdP sends it again) instead of keeping the IdP waiting. Sent as startup
    # options of the web's connections: a pooler in front must pass them on.
    web_database_lock_timeout: float = Field(default=5.0, gt=0, le=600)
    web_database_statement_timeout: float = Field(default=30.0, gt=0, le=3600)
    # How long a task's statement waits for a lock another session holds (an admin's open
    # transaction on the person, a long sync's rows), on PostgreSQL, before it fails with a
    # lock timeout: the task is then retried with backoff (TASK_DATABASE_RETRIES) instead of
    # holding its worker slot for as long as the other transaction lasts.
    worker_database_lock_timeout: float = Field(default=30.0, gt=0, le=3600)
    # A task that finds the database unavailable (refused, dropped, locked) is retried this
    # many times, 1 s doubling to 60 s apart with jitter (worker/tasks/base.py), then fails.
    task_database_retries: int = Field(default=10, ge=0, le=30)
    celery_broker_url: str = EMBEDDED_BROKER_URL
    celery_queue: str = "odock-sync"
    broker_poll_interval: float = Field(default=0.1, gt=0, le=60)
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    # Where the organisation documents its SCIM set-up for IdP admins; /ServiceProviderConfig
    # names it as documentationUri (optional, RFC 7643 section 5), and leaves it out unset.
    scim_documentation_url: str = ""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The web drops a connection that sends nothing for this long, and answers 408 to a
    # request not received whole this long after its first byte (webhooks/buffering_worker.py).
    web_idle_timeout: float = Field(default=10.0, gt=0, le=300)
    web_request_read_timeout: float = Field(default=20.0, gt=0, le=300)
    log_level: str = "INFO"
    log_json: bool = True
    outbox_relay_interval: float = Field(default=5.0, gt=0)
    outbox_redispatch_after: float = Field(default=900.0, gt=0)
    outbox_max_attempts: int = Field(default=8, ge=1)
    # How long a completed outbox message is kept before the hourly purge deletes it.
    outbox_retention_days: float = Field(default=7.0, gt=0, le=3650)
    # The web hands what a transaction committed to a publishing thread instead of publishing
    # in the request: a broker that hangs costs the request nothing (the relay carries it).
    outbox_publish_in_background: bool = True
    # Seconds each broker read or write of the web may wait (in the publishing thread, never
    # in a request) before it gives up and leaves the message to the relay.
    broker_publish_timeout: float = Field(default=5.0, gt=0, le=60)
    gateway_url: str = ""
    gateway_secret: str = ""
    gateway_timeout: float = Field(default=5.0, gt=0)
    # Every key invalidation must be acknowledged within this many seconds, or admins are alarmed.
    cutoff_deadline: float = Field(default=60.0, gt=0)
    cutoff_reap_interval: float = Field(default=2.0, gt=0, le=60)
    # How often the beat looks for access end dates that have come (and departure notices
    # due): a person is revoked within this long after their date.
    access_end_tick_seconds: float = Field(default=20.0, gt=0, le=60)
    # Backoff between attempts of one cut-off (gateway call, or store command when bridged).
    cutoff_retry_base: float = Field(default=1.0, gt=0)
    cutoff_retry_max: float = Field(default=15.0, gt=0)
    # How long an acknowledged cut-off is kept before the hourly purge deletes it.
    cutoff_retention_days: float = Field(default=7.0, gt=0, le=3650)
    odock_mode: Literal["embedded", "bridged"] = "embedded"
    odock_management_url: str = ""
    odock_management_token: str = ""
    odock_command_secret: str = ""
    odock_timeout: float = Field(default=5.0, gt=0, le=60)
    # How long one caller goes on starting store calls for the keys it leased; the lease
    # covers this, one more store call and the gateway call.
    odock_send_budget: float = Field(default=5.0, gt=0, le=60)
    odock_reconcile_interval: float = Field(default=3600.0, gt=0)
    odock_reinvalidate_after: float = Field(default=5.0, ge=0, le=3600)
    # A failed reconcile is tried again after base, 2x base, ... (at most this many times)
    # before the next interval.
    odock_reconcile_retry_base: float = Field(default=30.0, gt=0)
    odock_reconcile_retries: int = Field(default=4, ge=0, le=20)
    # How many consecutive complete listings must lack a key, budget or quota before the
    # reconcile forgets it (docs/odock.md). One is never enough: offset paging skips an item
    # when another is deleted between two page reads, and a replica may lag.
    odock_forget_after_listings: int = Field(default=3, ge=2, le=100)
    # How long a deleted object's tombstone outlives the deletion (docs/odock.md).
    odock_tombstone_retention_days: float = Field(default=30.0, gt=0)
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "odock-sync@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    invitation_retry_base: float = Field(default=2.0, gt=0)
    invitation_retry_max: float = Field(default=600.0, gt=0)
    outbound_allow_private_addresses: bool = False
    outbound_allow_loopback: bool = False
    outbound_allowed_networks: str = ""
    # Name servers (IP[:port], comma-separated) that resolve the names admins choose (hooks,
    # audit streams, LDAP servers) instead of the system's resolver; each name within the
    # timeout. Empty: the system's resolver (its own timeouts).
    outbound_dns_servers: str = ""
    outbound_dns_timeout: float = Field(default=5.0, gt=0, le=120)
    ldap_ca_directory: str = ""
    notification_timeout: float = Field(default=5.0, gt=0, le=60)
    notification_retry_base: float = Field(default=30.0, gt=0)
    notification_retry_max: float = Field(default=3600.0, gt=0)
    notification_max_attempts: int = Field(default=12, ge=1)
    hook_disable_after_failures: int = Field(default=15, ge=1)
    review_sweep_interval: float = Field(default=3600.0, gt=0)
    review_escalation_check_interval: float = Field(default=300.0, gt=0)
    ack_link_lifetime_hours: int = Field(default=7 * 24, ge=1)
    enrollment_identity_header: str = ""
    enrollment_webhook_secrets: str = ""
    enrollment_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    enrollment_max_form_bytes: int = Field(default=8192, ge=256, le=1_048_576)
    invitation_expiry_interval: float = Field(default=300.0, gt=0)
    invitation_expiry_batch_size: int = Field(default=10_000, ge=1, le=100_000)
    event_max_body_bytes: int = Field(default=262_144, ge=1024)
    event_timestamp_tolerance: int = Field(default=300, ge=1, le=3600)
    directory_sync_tick_seconds: float = Field(default=60.0, gt=0)
    # How often the beat opens due recertification campaigns and applies their deadlines.
    recertification_tick_seconds: float = Field(default=60.0, gt=0)
    # A sync renews its lease every third of this; a dead holder's lease frees after it.
    directory_sync_lease_seconds: float = Field(default=90.0, ge=1, le=3600)
    event_hook_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    event_drain_sweep_interval: float = Field(default=30.0, gt=0)
    scim_token_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    audit_stream_tick_seconds: float = Field(default=5.0, gt=0)
    audit_stream_retry_base: float = Field(default=5.0, gt=0)
    audit_stream_retry_max: float = Field(default=300.0, gt=0)
    audit_stream_batches_per_run: int = Field(default=20, ge=1, le=1000)
    source_health_check_seconds: float = Field(default=60.0, gt=0)
    console_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("celery_broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        # kombu reads a bare word as the host of an AMQP broker, which the worker then tried
        # to reach, retrying, forever.
        scheme, found, _ = value.partition("://")
        if not found or not scheme:
            raise ValueError("must be a URL, e.g. redis://host:6379/0 or sqla+sqlite:///file")
        return value

    @field_validator(
        "public_base_url", "gateway_url", "scim_documentation_url", "odock_management_url"
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        # A link in an email, a call to the gateway: anything else fails later, far from here.
        scheme, _, rest = value.partition("://")
        if value and not (scheme.lower() in ("http", "https") and rest):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, value: str) -> str:
        # Empty means unset: the embedded default generates one (with_secret).
        if value and len(value.encode()) < SECRET_KEY_MIN_BYTES:
            raise ValueError(SECRET_KEY_ADVICE)
        return value

    @field_validator("outbound_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # a ValueError names the bad network
        return value

    @field_validator("outbound_dns_servers")
    @classmethod
    def _name_servers(cls, value: str) -> str:
        parse_name_servers(value)  # a ValueError names the bad server
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def enrollment_webhook_secret_list(self) -> list[str]:
        """Several secrets, comma-separated, so one can be rotated without downtime."""
        return [part.strip() for part in self.enrollment_webhook_secrets.split(",") if part.strip()]

    def outbound_policy(self) -> UrlPolicy:
        """Where an organisation admin may point odock-sync (hooks, LDAP servers)."""
        return UrlPolicy(
            allow_private=self.outbound_allow_private_addresses,
            allow_loopback=self.outbound_allow_loopback,
            allowed_networks=parse_networks(self.outbound_allowed_networks),
            dns_servers=parse_name_servers(self.outbound_dns_servers),
            dns_timeout=self.outbound_dns_timeout,
        )

    def operator_outbound_policy(self) -> UrlPolicy:
        """Where the operator points odock-sync (GATEWAY_URL, ODOCK_MANAGEMENT_URL): their own
        network, so private and loopback addresses too, but never link-local (cloud metadata)
        or carrier-grade NAT unless allow-listed."""
        return UrlPolicy(
            allow_private=True,
            allow_loopback=True,
            allowed_networks=parse_networks(self.outbound_allowed_networks),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_secret(self) -> Settings:
        """Fill in the secret key from a local file for the embedded default; a server
        database needs SECRET_KEY set (one key for all its processes)."""
        if self.secret_key:
            return self
        if not self.is_sqlite:
            raise SettingsError(f"invalid settings: SECRET_KEY: {SECRET_KEY_REQUIRED}")
        path = Path(EMBEDDED_SECRET_FILE)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        key = path.read_text().strip()
        if len(key.encode()) < SECRET_KEY_MIN_BYTES:
            raise SettingsError(f"invalid settings: SECRET_KEY: {path}: {SECRET_KEY_ADVICE}")
        return self.model_copy(update={"secret_key": key})


def load_settings() -> Settings:
    """Read the environment; fail fast with a message that names each bad variable."""
    try:
        return Settings().with_secret()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
