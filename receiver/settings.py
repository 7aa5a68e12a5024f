"""Settings from RECEIVER_* environment variables (SPEC §3); command-line flags win."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from receiver.intake.imap import ImapUrlError, parse_imap_url

_TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")
# Settings that hold secrets: never blank, never shown.
SECRETS = (
    "webhook_token", "api_token", "jira_token", "slack_token", "slack_signing_secret", "smtp_url",
    "reports_imap_url", "telegram_token", "telegram_webhook_secret", "ui_secret",
)  # fmt: skip


class Settings(BaseSettings):
    """Everything configurable outside the rules file."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_", extra="ignore")

    rules: str = "routing_rules.yaml"
    host: str = "127.0.0.1"
    port: int = Field(default=9095, ge=0, le=65535)
    database_url: str = "sqlite:///receiver.db"
    webhook_token: SecretStr | None = None
    api_token: SecretStr | None = None
    allow_unauthenticated: bool = False
    jira_url: str | None = None
    jira_user: str | None = None
    jira_token: SecretStr | None = None
    jira_deployment: Literal["auto", "server", "cloud"] = "auto"  # auto: ask serverInfo
    slack_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_signing_secret: SecretStr | None = None
    log_format: Literal["json", "console"] = "json"
    log_level: str = "info"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    outbox_max_age_seconds: float = Field(default=24 * 3600, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # How long a claimed delivery or timer is hidden from other workers and replicas; a
    # claim of a process that died is taken over after it. Keep it above the notifiers'
    # request timeouts.
    outbox_lease_seconds: float = Field(default=120.0, ge=1)
    coalesce_seconds: float = Field(default=60.0, ge=0)
    # Deliveries of one channel under way at once (JSON, e.g. {"jira": 8}); the channels
    # not named keep their defaults (receiver.outbox.worker.DEFAULT_CONCURRENCY).
    outbox_concurrency: dict[str, Annotated[int, Field(ge=1, le=256)]] = Field(default_factory=dict)
    # Browser origins (exact, comma-separated) whose pages may file beta-tester reports
    # (POST /api/v1/reports): CORS allows these and no other.
    reports_origins: str = ""
    # Where the notices to beta testers go out (receipts, "it is fixed"): smtp:// with
    # STARTTLS, smtp://...?tls=none for a local relay, or smtps://; and their sender.
    smtp_url: SecretStr | None = None
    smtp_from: str | None = None
    # The beta-feedback mailbox, whose e-mails become reports (imaps://user:password@host/
    # INBOX; imap:// with STARTTLS, or ?tls=none for a local server), and how often it is
    # looked at.
    reports_imap_url: SecretStr | None = None
    reports_imap_poll_seconds: float = Field(default=30.0, gt=0)
    # The Alertmanagers whose silences and alerts the open incidents are reconciled with
    # (comma-separated, e.g. both of an HA pair), how often, and how long an alert must be
    # gone from all of them before its incident counts it resolved (an Alertmanager just
    # restarted has not heard from Prometheus again yet).
    alertmanager_url: str | None = None
    alertmanager_poll_seconds: float = Field(default=30.0, gt=0)
    alertmanager_grace_seconds: float = Field(default=300.0, ge=0)
    # Telegram's Bot API: the bot's token (pages, their buttons, announcements to testers,
    # reports sent to the bot), where the API is, and the secret Telegram sends with every
    # update to POST /telegram/webhook (set with setWebhook's secret_token).
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_secret: SecretStr | None = None
    # The receiver's own address as people reach it: pages link the incident there.
    public_url: str | None = None
    # The web console (/ui/): the key its session cookies are signed with (at least 32
    # characters; unset, a random one per process: sessions end with a restart and do not
    # carry over to another replica), and the header an SSO proxy names the signed-in person
    # in (their id or e-mail in the rules file), honoured only from the proxies' addresses
    # (comma-separated IPs or CIDR networks).
    ui_secret: SecretStr | None = None
    ui_trusted_header: str | None = None
    ui_trusted_proxies: str = ""
    # Slow clients: a request's headers must be complete this long after the connection
    # opened (or after its first byte on a kept-alive connection), its body this long after
    # its headers; an idle kept-alive connection closes after the keep-alive timeout.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    keepalive_timeout_seconds: float = Field(default=75.0, gt=0)

    @field_validator(*SECRETS)
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty secret (an empty secret file, ``VAR=``) is a mistake, never "no secret":
        taken as set it would accept an empty password, taken as unset it would fail open."""
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty or blank; give the secret, or leave the variable unset")
        return value

    def alertmanager_urls(self) -> list[str]:
        """The Alertmanagers of RECEIVER_ALERTMANAGER_URL, without a trailing slash."""
        raw = self.alertmanager_url or ""
        return [u.strip().rstrip("/") for u in raw.split(",") if u.strip()]

    def report_origins(self) -> frozenset[str]:
        """The origins of RECEIVER_REPORTS_ORIGINS, without a trailing slash."""
        return frozenset(
            o.strip().rstrip("/") for o in self.reports_origins.split(",") if o.strip()
        )

    def trusted_proxies(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks of RECEIVER_UI_TRUSTED_PROXIES (ValueError names a bad one)."""
        out = []
        for part in (p.strip() for p in self.ui_trusted_proxies.split(",")):
            if part:
                try:
                    out.append(ipaddress.ip_network(part, strict=False))
                except ValueError:
                    raise ValueError(f"{part[:64]!r} is not an IP address or network") from None
        return tuple(out)

    def is_loopback(self) -> bool:
        """Whether the listen address only accepts local connections."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def _console_problem(self) -> str | None:
        """Why the console's settings cannot be used, or None."""
        try:
            proxies = self.trusted_proxies()
        except ValueError as exc:
            return f"RECEIVER_UI_TRUSTED_PROXIES: {exc}"
        header = self.ui_trusted_header
        if header is not None and not _HEADER.fullmatch(header):
            return f"RECEIVER_UI_TRUSTED_HEADER: {header[:64]!r} is not an HTTP header name"
        if header is not None and not proxies:
            return (
                "RECEIVER_UI_TRUSTED_HEADER needs RECEIVER_UI_TRUSTED_PROXIES: without them "
                "anyone could sign in as anyone by sending that header"
            )
        if self.ui_secret is not None and len(self.ui_secret.get_secret_value()) < 32:
            return "RECEIVER_UI_SECRET must be at least 32 characters (e.g. openssl rand -hex 32)"
        return None

    def startup_problem(self) -> str | None:
        """Why the service must refuse to start, or None."""
        if (self.smtp_url is None) != (self.smtp_from is None):
            return "RECEIVER_SMTP_URL and RECEIVER_SMTP_FROM go together: give both, or neither"
        if self.reports_imap_url is not None:
            try:
                parse_imap_url(self.reports_imap_url.get_secret_value())
            except ImapUrlError as exc:
                return str(exc)
        if self.telegram_token is not None and self.telegram_webhook_secret is None:
            return (
                "RECEIVER_TELEGRAM_TOKEN needs RECEIVER_TELEGRAM_WEBHOOK_SECRET: without it "
                "anyone could press the bot's buttons by posting to /telegram/webhook"
            )
        secret = self.telegram_webhook_secret
        if secret is not None and not _TELEGRAM_SECRET.fullmatch(secret.get_secret_value()):
            return (
                "RECEIVER_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ "
                "and - (what Telegram's setWebhook accepts)"
            )
        for name, value in (("TELEGRAM_API_URL", self.telegram_api_url),
                            ("PUBLIC_URL", self.public_url)):  # fmt: skip
            if value is not None and not value.startswith(("http://", "https://")):
                return f"RECEIVER_{name}: {value!r} is not an http(s) address"
        if problem := self._console_problem():
            return problem
        for url in self.alertmanager_urls():
            if not url.startswith(("http://", "https://")):
                return f"RECEIVER_ALERTMANAGER_URL: {url!r} is not an http(s) address"
        if self.is_loopback() or self.allow_unauthenticated:
            return None
        if self.webhook_token is None:
            return (
                f"refusing to listen on {self.host} without RECEIVER_WEBHOOK_TOKEN "
                "(set RECEIVER_ALLOW_UNAUTHENTICATED=true to override)"
            )
        if self.api_token is None:
            return (
                f"refusing to listen on {self.host} without RECEIVER_API_TOKEN "
                "(set RECEIVER_ALLOW_UNAUTHENTICATED=true to override)"
            )
        return None
