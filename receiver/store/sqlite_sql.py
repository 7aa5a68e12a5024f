"""The SQLite store's statements (see ``sql`` for the conventions they follow)."""

from __future__ import annotations

from receiver.store.rows import (
    ALERT_COLUMNS,
    ALERT_COLUMNS_OF_A,
    ALERT_UPSERT,
    INCIDENT_COLUMNS,
    INCIDENT_COLUMNS_OF_I,
    INSERTED_INCIDENT_COLUMNS,
    MAINTENANCE_COLUMNS,
    OPEN_COUNTS,
    OUTBOX_STATS,
    REPORT_COLUMNS,
)
from receiver.store.sql import Statements

# A queue of a Table argument: (channel, incident id or 0), as json_each gives it.
_QUEUE_ROW = "o.channel = q.value ->> 0 AND o.incident_id IS nullif(q.value ->> 1, 0)"
_CLAIMABLE = (
    "FROM outbox o WHERE status = 'pending' AND next_attempt_at <= ?1 "
    "AND (claimed_until IS NULL OR claimed_until < ?1) AND (?{channel} IS NULL OR channel = "
    "?{channel}) AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' "
    "AND p.channel = o.channel AND p.incident_id IS o.incident_id AND p.id < o.id)"
)
_DUE_TIMERS = (
    "FROM timers WHERE status = 'pending' AND due_at <= ?1 "
    "AND (claimed_until IS NULL OR claimed_until < ?1)"
)

STATEMENTS = Statements(
    # With an explicit id (every incident's id is reserved before it is decided on): id,
    # incident_values, source.
    insert_incident=(
        f"INSERT INTO incidents ({INSERTED_INCIDENT_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    # The JIRA key is the JIRA notifier's alone: a decision never clears it.
    update_incidents=(
        "UPDATE incidents SET key=?, rule=?, severity=?, category=?, team=?, status=?, "
        "summary=?, group_labels=?, opened_at=?, triggered_at=?, first_starts_at=?, "
        "acknowledged_at=?, acknowledged_by=?, resolved_at=?, resolved_by=?, "
        "jira_key=coalesce(?, jira_key), firing_alerts=?, alertmanager_url=?, "
        "mitigated_at=?, mitigated_by=?, reported_at=?, reported_by=?, maintenance=?, "
        "assignee=?, version=version + 1 WHERE id=? AND version=?"
    ),
    upsert_alert=(
        f"INSERT INTO alerts ({ALERT_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"{ALERT_UPSERT}"
    ),
    insert_event="INSERT INTO timeline (incident_id, at, event, data) VALUES (?, ?, ?, ?)",
    # Stored times come back rounded to microseconds: "still the time read" allows for that.
    advance_schedule=(
        "UPDATE schedules SET next_at = ?1 WHERE name = ?2 AND abs(next_at - ?3) < 0.001"
    ),
    # The newest pending row of each queue, if nobody holds a claim on it.
    waiting=(
        "SELECT o.id, q.value ->> 0, q.value ->> 1, o.incident_id, o.kind, o.payload "
        "FROM json_each(?1) AS q JOIN outbox o ON o.id = (SELECT max(o.id) FROM outbox o "
        f"WHERE o.status = 'pending' AND {_QUEUE_ROW}) "
        "WHERE o.attempts = 0 AND o.claims = 0 AND o.claimed_until IS NULL"
    ),
    release=(
        "UPDATE outbox SET next_attempt_at = ?1 WHERE id IN (SELECT o.id FROM json_each(?2) "
        f"AS q JOIN outbox o ON o.status = 'pending' AND {_QUEUE_ROW} "
        "WHERE o.attempts = 0 AND o.next_attempt_at > ?1)"
    ),
    set_payload="UPDATE outbox SET payload = ? WHERE id = ?",
    insert_outbox=(
        "INSERT INTO outbox (incident_id, channel, kind, payload, created_at, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    ),
    # Only the oldest pending row of each queue is claimable.
    claimable=f"SELECT id {_CLAIMABLE.format(channel=2)} LIMIT 1",
    claim_outbox=(
        "UPDATE outbox SET claimed_until = ?3, claims = claims + 1 WHERE id IN "
        f"(SELECT id {_CLAIMABLE.format(channel=4)} ORDER BY id LIMIT ?2) "
        "RETURNING id, incident_id, channel, kind, payload, attempts, created_at, claims"
    ),
    finish_sent=(
        "UPDATE outbox SET status = 'sent', done_at = ?1, attempts = attempts + 1, "
        "claimed_until = NULL WHERE id = ?2"
    ),
    finish_retry=(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?1, last_error = ?2, "
        "claimed_until = NULL WHERE id = ?3"
    ),
    finish_dead=(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_at = ?1, "
        "last_error = ?2, claimed_until = NULL WHERE id = ?3"
    ),
    finish_release="UPDATE outbox SET claimed_until = NULL WHERE id = ?1 AND status = 'pending'",
    retry_dead=(
        "UPDATE outbox SET status = 'pending', attempts = 0, created_at = ?1, "
        "next_attempt_at = ?1, claimed_until = NULL, done_at = NULL "
        "WHERE id = ?2 AND status = 'dead'"
    ),
    set_jira_key="UPDATE incidents SET jira_key = ?1 WHERE id = ?2",
    add_slack_message=(
        "INSERT INTO slack_messages (incident_id, channel_id, ts, purpose) "
        "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel_id, ts) DO NOTHING"
    ),
    cancel_timers=(
        "UPDATE timers SET status = 'cancelled', done_at = ?1 "
        "WHERE incident_id IN (SELECT value FROM json_each(?2)) AND status = 'pending'"
    ),
    fire_timers=(
        "UPDATE timers SET status = 'fired', done_at = ?1 "
        "WHERE id IN (SELECT value FROM json_each(?2)) AND status = 'pending' RETURNING id"
    ),
    insert_timer=(
        "INSERT OR IGNORE INTO timers (incident_id, kind, step, trigger_at, due_at) "
        "VALUES (?, ?, ?, ?, ?)"
    ),
    timers_due=f"SELECT id {_DUE_TIMERS} LIMIT 1",
    claim_timers=(
        "UPDATE timers SET claimed_until = ?3 WHERE id IN "
        f"(SELECT id {_DUE_TIMERS} ORDER BY due_at, id LIMIT ?2) "
        "RETURNING id, incident_id, kind, step, trigger_at, due_at"
    ),
    schedule="SELECT next_at FROM schedules WHERE name = ?1",
    add_schedule="INSERT OR IGNORE INTO schedules (name, next_at) VALUES (?1, ?2)",
    heartbeat_seen=(
        "INSERT INTO heartbeats (name, last_seen) VALUES (?1, ?2) ON CONFLICT (name) "
        "DO UPDATE SET last_seen = max(heartbeats.last_seen, excluded.last_seen)"
    ),
    heartbeat_missed="UPDATE heartbeats SET missed_at = ?1 WHERE name = ?2",
    heartbeats="SELECT name, last_seen, missed_at FROM heartbeats ORDER BY name",
    set_password=(
        "INSERT INTO console_passwords (person, hash, set_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (person) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at"
    ),
    password="SELECT hash, set_at FROM console_passwords WHERE person = ?1",
    insert_report=(
        f"INSERT INTO reports ({REPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    insert_attachment=(
        "INSERT INTO report_attachments (incident_id, n, filename, content_type, data) "
        "VALUES (?, ?, ?, ?, ?)"
    ),
    find_report=(
        "SELECT incident_id, reference FROM reports WHERE dedup_key = ?1 AND created_at >= ?2 "
        "ORDER BY created_at DESC LIMIT 1"
    ),
    get_report=f"SELECT {REPORT_COLUMNS} FROM reports WHERE incident_id = ?1",
    report_attachments=(
        "SELECT filename, content_type, data FROM report_attachments WHERE incident_id = ?1 "
        "ORDER BY n"
    ),
    report_of_reference="SELECT incident_id FROM reports WHERE reference = ?1",
    insert_mail=(
        "INSERT INTO mail_taken (mailbox, uidvalidity, uid, message_id, incident_id, outcome, "
        "taken_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ),
    mail_last_uid="SELECT max(uid) FROM mail_taken WHERE mailbox = ?1 AND uidvalidity = ?2",
    mail_known=(
        "SELECT message_id, max(incident_id) FROM mail_taken "
        "WHERE message_id IN (SELECT value FROM json_each(?1)) GROUP BY message_id"
    ),
    upsert_link=(
        "INSERT INTO links (incident_id, target_id, linked_at, linked_by) "
        "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (incident_id) DO UPDATE SET "
        "target_id = excluded.target_id, linked_at = excluded.linked_at, "
        "linked_by = excluded.linked_by"
    ),
    linked_open=(
        f"SELECT l.target_id, {INCIDENT_COLUMNS_OF_I} "
        "FROM links l JOIN incidents i ON i.id = l.incident_id "
        "WHERE l.target_id IN (SELECT value FROM json_each(?1)) "
        "AND i.status != 'resolved' ORDER BY i.id"
    ),
    link_of="SELECT target_id FROM links WHERE incident_id = ?1",
    latest=(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id IN (SELECT max(id) FROM incidents "
        "WHERE key IN (SELECT value FROM json_each(?1)) GROUP BY key)"
    ),
    # One index probe per (incident id, fingerprint) pair.
    known_alerts=(
        f"SELECT {ALERT_COLUMNS_OF_A} FROM json_each(?1) AS w JOIN alerts a "
        "ON a.incident_id = w.value ->> 0 AND a.fingerprint = w.value ->> 1"
    ),
    installation="SELECT id FROM installation",
    jira_keys=(
        "SELECT id, jira_key FROM incidents "
        "WHERE id IN (SELECT value FROM json_each(?1)) AND jira_key IS NOT NULL"
    ),
    slack_messages=(
        "SELECT incident_id, channel_id, ts, purpose FROM slack_messages "
        "WHERE incident_id IN (SELECT value FROM json_each(?1)) ORDER BY rowid"
    ),
    get_incident=f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1",
    incident_alerts=(
        f"SELECT {ALERT_COLUMNS} FROM (SELECT *, row_number() OVER "
        "(PARTITION BY incident_id ORDER BY first_seen, fingerprint) AS n FROM alerts "
        "WHERE incident_id IN (SELECT value FROM json_each(?1))) "
        "WHERE ?2 IS NULL OR n <= ?2 ORDER BY incident_id, n"
    ),
    alert_counts=(
        "SELECT incident_id, count(*) FROM alerts "
        "WHERE incident_id IN (SELECT value FROM json_each(?1)) GROUP BY incident_id"
    ),
    timeline="SELECT at, event, data FROM timeline WHERE incident_id = ?1 ORDER BY id",
    digest_incidents=(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status != 'resolved' "
        "OR opened_at >= ?1 OR acknowledged_at >= ?1 OR resolved_at >= ?1 "
        "OR mitigated_at >= ?1 OR reported_at >= ?1 ORDER BY id"
    ),
    insert_maintenance=(
        "INSERT INTO maintenance (matchers, starts_at, ends_at, reason, created_by, "
        "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id"
    ),
    maintenance_windows=(
        f"SELECT {MAINTENANCE_COLUMNS} FROM maintenance WHERE ends_at > ?1 ORDER BY starts_at, id"
    ),
    get_maintenance=f"SELECT {MAINTENANCE_COLUMNS} FROM maintenance WHERE id = ?1",
    end_maintenance=(
        "UPDATE maintenance SET ends_at = max(starts_at, ?1), ended_by = ?2 "
        "WHERE id = ?3 AND ends_at > ?1"
    ),
    held_by=(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE maintenance = ?1 "
        "AND status != 'resolved' ORDER BY id"
    ),
    open_counts=OPEN_COUNTS,
    outbox_stats=OUTBOX_STATS,
)
