"""Schema migrations, applied in order; ``schema_version`` records how far a database is."""

from __future__ import annotations

# Times are seconds since the epoch (UTC); JSON columns hold objects as text.
# Statements are split on semicolons: keep them out of comments.
SQLITE_MIGRATIONS: list[str] = [
    """
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        category TEXT NOT NULL,
        team TEXT NOT NULL,
        status TEXT NOT NULL,
        summary TEXT NOT NULL,
        group_labels TEXT NOT NULL,
        opened_at REAL NOT NULL,
        triggered_at REAL NOT NULL,
        first_starts_at REAL NOT NULL,
        acknowledged_at REAL,
        acknowledged_by TEXT,
        resolved_at REAL,
        resolved_by TEXT,
        jira_key TEXT,
        firing_alerts INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0
    );
    -- At most one unresolved incident per key, whatever writes it.
    CREATE UNIQUE INDEX incidents_open_key ON incidents (key) WHERE status != 'resolved';
    CREATE INDEX incidents_key ON incidents (key, id);
    CREATE INDEX incidents_status ON incidents (status, severity);
    CREATE TABLE alerts (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        fingerprint TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL,
        generator_url TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (incident_id, fingerprint)
    );
    CREATE INDEX alerts_status ON alerts (incident_id, status);
    CREATE TABLE timeline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        event TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX timeline_incident ON timeline (incident_id, id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER REFERENCES incidents (id),
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        claimed_until REAL,
        last_error TEXT,
        done_at REAL
    );
    -- Claims walk pending rows in id order, so sent and dead rows never slow them down.
    CREATE INDEX outbox_pending ON outbox (id, next_attempt_at) WHERE status = 'pending';
    CREATE INDEX outbox_order ON outbox (channel, incident_id, id) WHERE status = 'pending';
    """,
    """
    ALTER TABLE incidents ADD COLUMN alertmanager_url TEXT NOT NULL DEFAULT '';
    """,
    # Firing counts live on the incident row now: the index only slowed every insert.
    """
    DROP INDEX IF EXISTS alerts_status;
    """,
    # How often a row was handed to a worker: above one, an earlier attempt may have
    # reached the outside world without being recorded, and notifiers check first.
    """
    ALTER TABLE outbox ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
    """,
    # Escalation steps and ack deadlines as due times, so a restart neither loses nor
    # repeats one. "trigger" names the open, reopen or severity raise they belong to.
    """
    CREATE TABLE timers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        kind TEXT NOT NULL,
        step INTEGER NOT NULL,
        trigger_at REAL NOT NULL,
        due_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        claimed_until REAL,
        done_at REAL
    );
    CREATE UNIQUE INDEX timers_once ON timers (incident_id, kind, step, trigger_at);
    CREATE INDEX timers_due ON timers (due_at) WHERE status = 'pending';
    CREATE INDEX timers_incident ON timers (incident_id) WHERE status = 'pending';
    """,
    # Slack messages about an incident, to update them in place when its state changes.
    """
    CREATE TABLE slack_messages (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        channel_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        purpose TEXT NOT NULL,
        PRIMARY KEY (channel_id, ts)
    );
    CREATE INDEX slack_messages_incident ON slack_messages (incident_id);
    """,
    # A trigger at the same instant as a cancelled one must still get its timers.
    """
    DROP INDEX timers_once;
    CREATE UNIQUE INDEX timers_once ON timers (incident_id, kind, step, trigger_at)
        WHERE status = 'pending';
    """,
    # Stored due times of recurring jobs (the weekly digest): whoever sends one moves
    # next_at on in the same transaction, so restarts and replicas send it once.
    """
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        next_at REAL NOT NULL
    );
    """,
    # Which installation this database is, made once at random. The JIRA labels carry it, so
    # a receiver on another database (reset, moved, or staging beside production) sharing
    # one JIRA never takes this installation's issues for its own.
    """
    CREATE TABLE installation (
        id TEXT PRIMARY KEY
    );
    INSERT INTO installation (id) VALUES (lower(hex(randomblob(6))));
    """,
    # An incident's deliveries (the API's incident filter) by index instead of a scan of
    # the whole outbox, sent rows and all: PostgreSQL has had it from its first script.
    """
    CREATE INDEX outbox_incident ON outbox (incident_id, id);
    """,
    # Beta-tester reports: an incident's source ("alert" or "report"), and a report's own
    # fields. The reporter's contact lives here only: it goes to JIRA and to the notices
    # sent to the reporter, nowhere else.
    """
    ALTER TABLE incidents ADD COLUMN source TEXT NOT NULL DEFAULT 'alert';
    CREATE TABLE reports (
        incident_id BIGINT NOT NULL PRIMARY KEY REFERENCES incidents (id),
        reference TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        category TEXT,
        environment TEXT NOT NULL,
        steps TEXT,
        expected TEXT,
        actual TEXT,
        reporter TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX reports_dedup ON reports (dedup_key, created_at);
    CREATE TABLE report_attachments (
        incident_id BIGINT NOT NULL REFERENCES reports (incident_id),
        n INTEGER NOT NULL,
        filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (incident_id, n)
    );
    """,
    # A beta-tester report linked into another incident (the alert incident of the same
    # outage): resolved with it, its reporter told then.
    """
    CREATE TABLE links (
        incident_id BIGINT NOT NULL PRIMARY KEY REFERENCES incidents (id),
        target_id BIGINT NOT NULL REFERENCES incidents (id),
        linked_at REAL NOT NULL,
        linked_by TEXT NOT NULL
    );
    CREATE INDEX links_target ON links (target_id);
    """,
    # Beta testers' e-mails taken from the mailbox, each once across restarts and replicas:
    # by UID within the mailbox's UIDVALIDITY, and by Message-ID (the UIDs of a recreated
    # mailbox are new; its messages are not). A report keeps its e-mail's Message-ID to
    # answer in the reporter's thread.
    """
    CREATE TABLE mail_taken (
        mailbox TEXT NOT NULL,
        uidvalidity BIGINT NOT NULL,
        uid BIGINT NOT NULL,
        message_id TEXT,
        incident_id BIGINT REFERENCES incidents (id),
        outcome TEXT NOT NULL,
        taken_at REAL NOT NULL,
        PRIMARY KEY (mailbox, uidvalidity, uid)
    );
    CREATE INDEX mail_taken_message ON mail_taken (message_id);
    ALTER TABLE reports ADD COLUMN thread TEXT;
    """,
    # The phases after the ack: when the impact stopped (mitigated) and the postmortem was
    # written (reported), and by whom.
    """
    ALTER TABLE incidents ADD COLUMN mitigated_at REAL;
    ALTER TABLE incidents ADD COLUMN mitigated_by TEXT;
    ALTER TABLE incidents ADD COLUMN reported_at REAL;
    ALTER TABLE incidents ADD COLUMN reported_by TEXT;
    """,
    # Maintenance windows made through the API (the rules file's are in the rules), and the
    # window holding an incident's pages. A window ended early keeps its row, with who
    # ended it and the new end.
    """
    CREATE TABLE maintenance (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        ended_by TEXT
    );
    CREATE INDEX maintenance_ends ON maintenance (ends_at);
    ALTER TABLE incidents ADD COLUMN maintenance TEXT;
    """,
    # Heartbeats: the last sign of life of each (an alert matching it, or a ping), and since
    # when it is missed (its HeartbeatMissing alert fired), to resolve that once it is back.
    """
    CREATE TABLE heartbeats (
        name TEXT NOT NULL PRIMARY KEY,
        last_seen REAL NOT NULL,
        missed_at REAL
    );
    """,
    # The web console's passwords: one argon2 hash per person of the rules file, set by
    # `receiver passwd`. Changing it ends that person's sessions (they carry its set_at).
    """
    CREATE TABLE console_passwords (
        person TEXT NOT NULL PRIMARY KEY,
        hash TEXT NOT NULL,
        set_at REAL NOT NULL
    );
    """,
    # Whom an incident is handed to (reassigned, or a report's triage assignee); NULL: nobody
    # by hand, the ladder's on-call owns it.
    """
    ALTER TABLE incidents ADD COLUMN assignee TEXT;
    """,
]

# The same tables for PostgreSQL. Ids are BIGSERIAL, times DOUBLE PRECISION epoch seconds
# and JSON TEXT, so rows read back exactly as SQLite's do. Each script runs as one
# multi-statement query inside the migration transaction.
POSTGRES_MIGRATIONS: list[str] = [
    """
    CREATE TABLE incidents (
        id BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        category TEXT NOT NULL,
        team TEXT NOT NULL,
        status TEXT NOT NULL,
        summary TEXT NOT NULL,
        group_labels TEXT NOT NULL,
        opened_at DOUBLE PRECISION NOT NULL,
        triggered_at DOUBLE PRECISION NOT NULL,
        first_starts_at DOUBLE PRECISION NOT NULL,
        acknowledged_at DOUBLE PRECISION,
        acknowledged_by TEXT,
        resolved_at DOUBLE PRECISION,
        resolved_by TEXT,
        jira_key TEXT,
        firing_alerts INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        alertmanager_url TEXT NOT NULL DEFAULT ''
    );
    -- At most one unresolved incident per key, whichever replica writes it.
    CREATE UNIQUE INDEX incidents_open_key ON incidents (key) WHERE status != 'resolved';
    CREATE INDEX incidents_key ON incidents (key, id);
    CREATE INDEX incidents_status ON incidents (status, severity);
    CREATE TABLE alerts (
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        fingerprint TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        starts_at DOUBLE PRECISION NOT NULL,
        ends_at DOUBLE PRECISION,
        generator_url TEXT NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (incident_id, fingerprint)
    );
    CREATE TABLE timeline (
        id BIGSERIAL PRIMARY KEY,
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        at DOUBLE PRECISION NOT NULL,
        event TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX timeline_incident ON timeline (incident_id, id);
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        incident_id BIGINT REFERENCES incidents (id),
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        claimed_until DOUBLE PRECISION,
        last_error TEXT,
        done_at DOUBLE PRECISION,
        claims INTEGER NOT NULL DEFAULT 0
    );
    -- Claims walk pending rows in id order, so sent and dead rows never slow them down.
    CREATE INDEX outbox_pending ON outbox (id, next_attempt_at) WHERE status = 'pending';
    -- Rows without an incident form one queue per channel: incident 0 never exists.
    CREATE INDEX outbox_order ON outbox (channel, (coalesce(incident_id, 0)), id)
        WHERE status = 'pending';
    CREATE INDEX outbox_incident ON outbox (incident_id, id);
    CREATE TABLE timers (
        id BIGSERIAL PRIMARY KEY,
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        kind TEXT NOT NULL,
        step INTEGER NOT NULL,
        trigger_at DOUBLE PRECISION NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        claimed_until DOUBLE PRECISION,
        done_at DOUBLE PRECISION
    );
    CREATE UNIQUE INDEX timers_once ON timers (incident_id, kind, step, trigger_at)
        WHERE status = 'pending';
    CREATE INDEX timers_due ON timers (due_at) WHERE status = 'pending';
    CREATE INDEX timers_incident ON timers (incident_id) WHERE status = 'pending';
    -- id keeps the order the messages were recorded in.
    CREATE TABLE slack_messages (
        id BIGSERIAL NOT NULL,
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        channel_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        purpose TEXT NOT NULL,
        PRIMARY KEY (channel_id, ts)
    );
    CREATE INDEX slack_messages_incident ON slack_messages (incident_id, id);
    """,
    # Stored due times of recurring jobs (the weekly digest); see SQLITE_MIGRATIONS.
    """
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        next_at DOUBLE PRECISION NOT NULL
    );
    """,
    # Which installation this database is; see SQLITE_MIGRATIONS. Made under the migration
    # lock, so replicas starting together agree on it.
    """
    CREATE TABLE installation (
        id TEXT PRIMARY KEY
    );
    INSERT INTO installation (id)
        VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 12));
    """,
    # Beta-tester reports; see SQLITE_MIGRATIONS.
    """
    ALTER TABLE incidents ADD COLUMN source TEXT NOT NULL DEFAULT 'alert';
    CREATE TABLE reports (
        incident_id BIGINT PRIMARY KEY REFERENCES incidents (id),
        reference TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        category TEXT,
        environment TEXT NOT NULL,
        steps TEXT,
        expected TEXT,
        actual TEXT,
        reporter TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX reports_dedup ON reports (dedup_key, created_at);
    CREATE TABLE report_attachments (
        incident_id BIGINT NOT NULL REFERENCES reports (incident_id),
        n INTEGER NOT NULL,
        filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (incident_id, n)
    );
    """,
    # Reports linked into other incidents; see SQLITE_MIGRATIONS.
    """
    CREATE TABLE links (
        incident_id BIGINT NOT NULL PRIMARY KEY REFERENCES incidents (id),
        target_id BIGINT NOT NULL REFERENCES incidents (id),
        linked_at DOUBLE PRECISION NOT NULL,
        linked_by TEXT NOT NULL
    );
    CREATE INDEX links_target ON links (target_id);
    """,
    # E-mails taken from the mailbox; see SQLITE_MIGRATIONS.
    """
    CREATE TABLE mail_taken (
        mailbox TEXT NOT NULL,
        uidvalidity BIGINT NOT NULL,
        uid BIGINT NOT NULL,
        message_id TEXT,
        incident_id BIGINT REFERENCES incidents (id),
        outcome TEXT NOT NULL,
        taken_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (mailbox, uidvalidity, uid)
    );
    CREATE INDEX mail_taken_message ON mail_taken (message_id);
    ALTER TABLE reports ADD COLUMN thread TEXT;
    """,
    # The phases after the ack; see SQLITE_MIGRATIONS.
    """
    ALTER TABLE incidents ADD COLUMN mitigated_at DOUBLE PRECISION;
    ALTER TABLE incidents ADD COLUMN mitigated_by TEXT;
    ALTER TABLE incidents ADD COLUMN reported_at DOUBLE PRECISION;
    ALTER TABLE incidents ADD COLUMN reported_by TEXT;
    """,
    # Maintenance windows; see SQLITE_MIGRATIONS.
    """
    CREATE TABLE maintenance (
        id BIGSERIAL PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at DOUBLE PRECISION NOT NULL,
        ends_at DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        ended_by TEXT
    );
    CREATE INDEX maintenance_ends ON maintenance (ends_at);
    ALTER TABLE incidents ADD COLUMN maintenance TEXT;
    """,
    # Heartbeats; see SQLITE_MIGRATIONS.
    """
    CREATE TABLE heartbeats (
        name TEXT PRIMARY KEY,
        last_seen DOUBLE PRECISION NOT NULL,
        missed_at DOUBLE PRECISION
    );
    """,
    # The web console's passwords; see SQLITE_MIGRATIONS.
    """
    CREATE TABLE console_passwords (
        person TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        set_at DOUBLE PRECISION NOT NULL
    );
    """,
    # Whom an incident is handed to; see SQLITE_MIGRATIONS.
    """
    ALTER TABLE incidents ADD COLUMN assignee TEXT;
    """,
]
