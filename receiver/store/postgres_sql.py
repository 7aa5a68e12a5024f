"""The PostgreSQL store's statements (see ``sql`` for the conventions they follow)."""

from __future__ import annotations

from receiver.store import rows
from receiver.store.sql import Statements

# A row is claimable only while no older row of its queue is pending: one locked or leased
# by another claim still counts, so SKIP LOCKED never lets a younger row overtake it.
_CLAIMABLE = (
    "FROM outbox o WHERE status = 'pending' AND next_attempt_at <= $1 "
    "AND (claimed_until IS NULL OR claimed_until < $1) "
    "AND (${channel}::text IS NULL OR channel = ${channel}) "
    "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' "
    "AND p.channel = o.channel AND coalesce(p.incident_id, 0) = coalesce(o.incident_id, 0) "
    "AND p.id < o.id)"
)
_DUE_TIMERS = (
    "FROM timers WHERE status = 'pending' AND due_at <= $1 "
    "AND (claimed_until IS NULL OR claimed_until < $1)"
)

STATEMENTS = Statements(
    # With an explicit id (every incident's id is reserved before it is decided on): id,
    # incident_values, source.
    insert_incident=(
        f"INSERT INTO incidents ({rows.INSERTED_INCIDENT_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, "
        "$18, $19, $20, $21, $22, $23, $24, $25, $26)"
    ),
    # Several incidents' updates in one statement; the ids returned are those whose version
    # was still the one read. The JIRA key is the JIRA notifier's alone: never cleared.
    update_incidents=(
        "UPDATE incidents AS i SET key = u.key, rule = u.rule, severity = u.severity, "
        "category = u.category, team = u.team, status = u.status, summary = u.summary, "
        "group_labels = u.group_labels, opened_at = u.opened_at, "
        "triggered_at = u.triggered_at, first_starts_at = u.first_starts_at, "
        "acknowledged_at = u.acknowledged_at, acknowledged_by = u.acknowledged_by, "
        "resolved_at = u.resolved_at, resolved_by = u.resolved_by, "
        "jira_key = coalesce(u.jira_key, i.jira_key), firing_alerts = u.firing_alerts, "
        "alertmanager_url = u.alertmanager_url, mitigated_at = u.mitigated_at, "
        "mitigated_by = u.mitigated_by, reported_at = u.reported_at, "
        "reported_by = u.reported_by, maintenance = u.maintenance, assignee = u.assignee, "
        "version = i.version + 1 "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
        "$7::text[], $8::text[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], "
        "$13::text[], $14::float8[], $15::text[], $16::text[], $17::int[], $18::text[], "
        "$19::float8[], $20::text[], $21::float8[], $22::text[], $23::text[], $24::text[], "
        "$25::bigint[], $26::int[]) "
        "AS u (key, rule, severity, category, team, status, summary, group_labels, "
        "opened_at, triggered_at, first_starts_at, acknowledged_at, acknowledged_by, "
        "resolved_at, resolved_by, jira_key, firing_alerts, alertmanager_url, mitigated_at, "
        "mitigated_by, reported_at, reported_by, maintenance, assignee, id, version) "
        "WHERE i.id = u.id AND i.version = u.version RETURNING i.id"
    ),
    upsert_alert=(
        f"INSERT INTO alerts ({rows.ALERT_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        f"{rows.ALERT_UPSERT}"
    ),
    insert_event="INSERT INTO timeline (incident_id, at, event, data) VALUES ($1, $2, $3, $4)",
    # Stored times come back rounded to microseconds: "still the time read" allows for that.
    advance_schedule=(
        "UPDATE schedules SET next_at = $1 WHERE name = $2 AND abs(next_at - $3) < 0.001"
    ),
    # The newest pending row of each queue, if nobody holds a claim on it; locked so that a
    # claim cannot take it between the fold and the commit.
    waiting=(
        "SELECT o.id, q.channel, q.incident, o.incident_id, o.kind, o.payload "
        "FROM unnest($1::text[], $2::bigint[]) AS q (channel, incident) "
        "JOIN outbox o ON o.id = (SELECT max(p.id) FROM outbox p WHERE p.status = 'pending' "
        "AND p.channel = q.channel AND coalesce(p.incident_id, 0) = q.incident) "
        "WHERE o.status = 'pending' AND o.attempts = 0 AND o.claims = 0 "
        "AND o.claimed_until IS NULL FOR UPDATE OF o"
    ),
    release=(
        "UPDATE outbox o SET next_attempt_at = $1 "
        "FROM unnest($2::text[], $3::bigint[]) AS q (channel, incident) "
        "WHERE o.status = 'pending' AND o.channel = q.channel "
        "AND coalesce(o.incident_id, 0) = q.incident AND o.attempts = 0 "
        "AND o.next_attempt_at > $1"
    ),
    set_payload="UPDATE outbox SET payload = $1 WHERE id = $2",
    insert_outbox=(
        "INSERT INTO outbox (incident_id, channel, kind, payload, created_at, next_attempt_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)"
    ),
    claimable=f"SELECT id {_CLAIMABLE.format(channel=2)} LIMIT 1",
    claim_outbox=(
        f"WITH claimable AS (SELECT id {_CLAIMABLE.format(channel=4)} "
        "ORDER BY id LIMIT $2 FOR UPDATE OF o SKIP LOCKED) "
        "UPDATE outbox SET claimed_until = $3, claims = outbox.claims + 1 FROM claimable "
        "WHERE outbox.id = claimable.id "
        "RETURNING outbox.id, incident_id, channel, kind, payload, attempts, created_at, claims"
    ),
    finish_sent=(
        "UPDATE outbox SET status = 'sent', done_at = $1, attempts = attempts + 1, "
        "claimed_until = NULL WHERE id = $2"
    ),
    finish_retry=(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, "
        "last_error = $2, claimed_until = NULL WHERE id = $3"
    ),
    finish_dead=(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_at = $1, "
        "last_error = $2, claimed_until = NULL WHERE id = $3"
    ),
    finish_release="UPDATE outbox SET claimed_until = NULL WHERE id = $1 AND status = 'pending'",
    retry_dead=(
        "UPDATE outbox SET status = 'pending', attempts = 0, created_at = $1, "
        "next_attempt_at = $1, claimed_until = NULL, done_at = NULL "
        "WHERE id = $2 AND status = 'dead'"
    ),
    set_jira_key="UPDATE incidents SET jira_key = $1 WHERE id = $2",
    add_slack_message=(
        "INSERT INTO slack_messages (incident_id, channel_id, ts, purpose) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    ),
    cancel_timers=(
        "UPDATE timers SET status = 'cancelled', done_at = $1 "
        "WHERE incident_id = ANY($2::bigint[]) AND status = 'pending'"
    ),
    fire_timers=(
        "UPDATE timers SET status = 'fired', done_at = $1 "
        "WHERE id = ANY($2::bigint[]) AND status = 'pending' RETURNING id"
    ),
    insert_timer=(
        "INSERT INTO timers (incident_id, kind, step, trigger_at, due_at) "
        "VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (incident_id, kind, step, trigger_at) WHERE status = 'pending' DO NOTHING"
    ),
    timers_due=f"SELECT id {_DUE_TIMERS} LIMIT 1",
    claim_timers=(
        f"WITH due AS (SELECT id {_DUE_TIMERS} ORDER BY due_at, id LIMIT $2 "
        "FOR UPDATE SKIP LOCKED) "
        "UPDATE timers t SET claimed_until = $3 FROM due WHERE t.id = due.id "
        "RETURNING t.id, t.incident_id, t.kind, t.step, t.trigger_at, t.due_at"
    ),
    schedule="SELECT next_at FROM schedules WHERE name = $1",
    add_schedule=(
        "INSERT INTO schedules (name, next_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
    ),
    heartbeat_seen=(
        "INSERT INTO heartbeats (name, last_seen) VALUES ($1, $2) ON CONFLICT (name) "
        "DO UPDATE SET last_seen = greatest(heartbeats.last_seen, excluded.last_seen)"
    ),
    heartbeat_missed="UPDATE heartbeats SET missed_at = $1 WHERE name = $2",
    heartbeats="SELECT name, last_seen, missed_at FROM heartbeats ORDER BY name",
    set_password=(
        "INSERT INTO console_passwords (person, hash, set_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (person) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at"
    ),
    password="SELECT hash, set_at FROM console_passwords WHERE person = $1",
    insert_report=(
        f"INSERT INTO reports ({rows.REPORT_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ),
    insert_attachment=(
        "INSERT INTO report_attachments (incident_id, n, filename, content_type, data) "
        "VALUES ($1, $2, $3, $4, $5)"
    ),
    find_report=(
        "SELECT incident_id, reference FROM reports WHERE dedup_key = $1 AND created_at >= $2 "
        "ORDER BY created_at DESC LIMIT 1"
    ),
    get_report=f"SELECT {rows.REPORT_COLUMNS} FROM reports WHERE incident_id = $1",
    report_attachments=(
        "SELECT filename, content_type, data FROM report_attachments WHERE incident_id = $1 "
        "ORDER BY n"
    ),
    report_of_reference="SELECT incident_id FROM reports WHERE reference = $1",
    insert_mail=(
        "INSERT INTO mail_taken (mailbox, uidvalidity, uid, message_id, incident_id, outcome, "
        "taken_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ),
    mail_last_uid="SELECT max(uid) FROM mail_taken WHERE mailbox = $1 AND uidvalidity = $2",
    mail_known=(
        "SELECT message_id, max(incident_id) FROM mail_taken "
        "WHERE message_id = ANY($1::text[]) GROUP BY message_id"
    ),
    upsert_link=(
        "INSERT INTO links (incident_id, target_id, linked_at, linked_by) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (incident_id) DO UPDATE SET "
        "target_id = excluded.target_id, linked_at = excluded.linked_at, "
        "linked_by = excluded.linked_by"
    ),
    linked_open=(
        f"SELECT l.target_id, {rows.INCIDENT_COLUMNS_OF_I} "
        "FROM links l JOIN incidents i ON i.id = l.incident_id "
        "WHERE l.target_id = ANY($1::bigint[]) "
        "AND i.status != 'resolved' ORDER BY i.id"
    ),
    link_of="SELECT target_id FROM links WHERE incident_id = $1",
    latest=(
        f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE id IN "
        "(SELECT max(id) FROM incidents WHERE key = ANY($1::text[]) GROUP BY key)"
    ),
    # One index probe per (incident id, fingerprint) pair.
    known_alerts=(
        f"SELECT {rows.ALERT_COLUMNS_OF_A} FROM unnest($1::bigint[], $2::text[]) "
        "AS wanted (incident_id, fingerprint) JOIN alerts a "
        "ON a.incident_id = wanted.incident_id AND a.fingerprint = wanted.fingerprint"
    ),
    installation="SELECT id FROM installation",
    jira_keys=(
        "SELECT id, jira_key FROM incidents WHERE id = ANY($1::bigint[]) AND jira_key IS NOT NULL"
    ),
    slack_messages=(
        "SELECT incident_id, channel_id, ts, purpose FROM slack_messages "
        "WHERE incident_id = ANY($1::bigint[]) ORDER BY id"
    ),
    get_incident=f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE id = $1",
    incident_alerts=(
        f"SELECT {rows.ALERT_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY incident_id "
        'ORDER BY first_seen, fingerprint COLLATE "C") AS n FROM alerts '
        "WHERE incident_id = ANY($1::bigint[])) a "
        "WHERE $2::bigint IS NULL OR n <= $2::bigint ORDER BY incident_id, n"
    ),
    alert_counts=(
        "SELECT incident_id, count(*) FROM alerts WHERE incident_id = ANY($1::bigint[]) "
        "GROUP BY incident_id"
    ),
    timeline="SELECT at, event, data FROM timeline WHERE incident_id = $1 ORDER BY id",
    digest_incidents=(
        f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE status != 'resolved' "
        "OR opened_at >= $1 OR acknowledged_at >= $1 OR resolved_at >= $1 "
        "OR mitigated_at >= $1 OR reported_at >= $1 ORDER BY id"
    ),
    insert_maintenance=(
        "INSERT INTO maintenance (matchers, starts_at, ends_at, reason, created_by, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
    ),
    maintenance_windows=(
        f"SELECT {rows.MAINTENANCE_COLUMNS} FROM maintenance WHERE ends_at > $1 "
        "ORDER BY starts_at, id"
    ),
    get_maintenance=f"SELECT {rows.MAINTENANCE_COLUMNS} FROM maintenance WHERE id = $1",
    end_maintenance=(
        "UPDATE maintenance SET ends_at = greatest(starts_at, $1), ended_by = $2 "
        "WHERE id = $3 AND ends_at > $1"
    ),
    held_by=(
        f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE maintenance = $1 "
        "AND status != 'resolved' ORDER BY id"
    ),
    open_counts=rows.OPEN_COUNTS,
    outbox_stats=rows.OUTBOX_STATS,
    lock_incidents=(
        "SELECT id FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE"
    ),
)
