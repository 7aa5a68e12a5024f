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
]
