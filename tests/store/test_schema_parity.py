"""Both backends end up with the same schema once their migrations have run.

SQLITE_MIGRATIONS and POSTGRES_MIGRATIONS are kept by hand. Each test opens a fresh database
of each backend through the real store, so the migrations run as they do in production, and
reads the schema back from the database's own catalog. Tables, columns (type by kind,
NOT NULL, default), primary keys, unique constraints, foreign keys and indexes (columns or
expressions, uniqueness, partial predicate) must agree. The only exceptions are the ones
listed in ALLOWED, each with the reason it is inherent to the backend.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from receiver.store.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from tests.postgres import POSTGRES_URL, postgres_schema
from tests.store.conftest import make_store

# ---------------------------------------------------------------------------------------
# The schema as both backends can describe it


@dataclass(frozen=True)
class Column:
    kind: str  # "integer", "real", "text", or the declared type when it is none of those
    not_null: bool
    default: str | None  # normalised; "autoincrement" for ids the database hands out


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_update: str
    on_delete: str


@dataclass(frozen=True)
class Table:
    columns: dict[str, Column]
    primary_key: tuple[str, ...]
    unique: frozenset[tuple[str, ...]]  # UNIQUE constraints (not CREATE UNIQUE INDEX)
    foreign_keys: frozenset[ForeignKey]


@dataclass(frozen=True)
class Index:
    table: str
    unique: bool
    columns: tuple[str, ...]  # normalised column names or expressions, " desc" if descending
    predicate: str | None  # normalised WHERE of a partial index
    include: tuple[str, ...] = ()  # PostgreSQL INCLUDE columns (SQLite has none)


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table]
    indexes: dict[str, Index] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Normalising SQL expressions (defaults, index expressions, predicates)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
      | (?P<op>::|<>|!=|<=|>=|\|\||[-+*/%=<>(),.])
    )""",
    re.VERBOSE,
)
# Words a PostgreSQL cast may name: "x::text" reads back where SQLite has plain "x".
_TYPE_WORDS = {
    "text",
    "bigint",
    "integer",
    "smallint",
    "int",
    "double",
    "precision",
    "real",
    "numeric",
    "boolean",
    "character",
    "varying",
    "regclass",
}
# Words before "(" that are not a function being called.
_KEYWORDS = {"and", "or", "not", "in", "is", "exists", "when", "then", "else", "between"}


def _tokens(sql: str) -> list[str]:
    """The tokens of an expression: keywords and names lower case and unquoted, string
    literals as written, "!=" as "<>", casts dropped."""
    out: list[str] = []
    pos, text = 0, sql.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read SQL at {text[pos:]!r} (in {sql!r})")
        pos = match.end()
        kind, token = match.lastgroup, match.group(match.lastgroup or 0)
        if kind == "quoted":
            token = token[1:-1].replace('""', '"')
        if kind in ("word", "quoted"):
            token = token.lower()
        out.append("<>" if token == "!=" else token)
    # Casts: "::" and the type words after it.
    kept: list[str] = []
    i = 0
    while i < len(out):
        if out[i] == "::":
            i += 1
            while i < len(out) and out[i] in _TYPE_WORDS:
                i += 1
            continue
        kept.append(out[i])
        i += 1
    # Parentheses around one token that are not a call: "(0)" is "0".
    changed = True
    while changed:
        changed = False
        for i in range(len(kept) - 2):
            called = i > 0 and _is_name(kept[i - 1]) and kept[i - 1] not in _KEYWORDS
            if kept[i] == "(" and kept[i + 2] == ")" and kept[i + 1] not in "()" and not called:
                del kept[i + 2], kept[i]
                changed = True
                break
    return kept


def _is_name(token: str) -> bool:
    return bool(re.fullmatch(r"[a-z_][a-z_0-9$]*", token))


def _closing(tokens: list[str], start: int) -> int:
    """Index of the ")" matching the "(" at ``start``."""
    depth = 0
    for i in range(start, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses in {' '.join(tokens)!r}")


def _split(tokens: list[str], separator: str) -> list[list[str]]:
    """``tokens`` split at ``separator`` outside parentheses."""
    parts: list[list[str]] = [[]]
    depth = 0
    for token in tokens:
        depth += {"(": 1, ")": -1}.get(token, 0)
        if depth == 0 and token == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _unwrap(tokens: list[str]) -> list[str]:
    while tokens and tokens[0] == "(" and _closing(tokens, 0) == len(tokens) - 1:
        tokens = tokens[1:-1]
    return tokens


def _join(tokens: list[str]) -> str:
    text = ""
    for i, token in enumerate(tokens):
        previous = tokens[i - 1] if i else ""
        tight = (
            not text
            or token in (")", ",", ".")
            or previous in ("(", ".")
            or (token == "(" and _is_name(previous) and previous not in _KEYWORDS)
        )
        text += token if tight else " " + token
    return text


def _expression(tokens: list[str]) -> str:
    """An expression with its AND/OR structure written one way: redundant parentheses go,
    those that group an OR inside an AND stay."""
    tokens = _unwrap(tokens)
    alternatives = _split(tokens, "or")
    if len(alternatives) > 1:
        return " or ".join(_expression(part) for part in alternatives)
    conditions = _split(tokens, "and")
    if len(conditions) > 1:
        written = []
        for part in conditions:
            text = _expression(part)
            written.append(f"({text})" if len(_split(_unwrap(part), "or")) > 1 else text)
        return " and ".join(written)
    return _join(tokens)


def normalise(sql: str | None) -> str | None:
    """SQL text as both backends would compare it: whitespace, case, quoting, casts and
    redundant parentheses do not count."""
    return None if sql is None else _expression(_tokens(sql))


def _kind(declared: str) -> str:
    name = " ".join(declared.lower().split())
    if name in ("integer", "int", "bigint", "smallint", "bigserial", "serial", "int4", "int8"):
        return "integer"
    if name in ("real", "double precision", "float8", "double"):
        return "real"
    if name in ("blob", "bytea"):
        return "bytes"
    return name  # "text", or whatever else appears, compared as it is


# ---------------------------------------------------------------------------------------
# Reading the schema back


def _sqlite_index_sql(sql: str) -> tuple[list[str], str | None]:
    """The indexed items and the WHERE clause of a CREATE INDEX statement."""
    tokens = _tokens(sql)
    start = tokens.index("(")
    end = _closing(tokens, start)
    items = [_unwrap(item) for item in _split(tokens[start + 1 : end], ",")]
    # An item may end in COLLATE name and ASC or DESC: index_xinfo reports those.
    items = [item[: item.index("collate")] if "collate" in item else item for item in items]
    items = [item[:-1] if item[-1:] in (["asc"], ["desc"]) else item for item in items]
    rest = tokens[end + 1 :]
    predicate = _join(rest[1:]) if rest[:1] == ["where"] else None
    return [_expression(item) for item in items], predicate


def sqlite_schema(path: Path) -> Schema:
    tables: dict[str, Table] = {}
    indexes: dict[str, Index] = {}
    with closing(sqlite3.connect(path)) as db:
        masters = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        for name, table_sql in masters:
            info = db.execute("SELECT * FROM pragma_table_info(?)", (name,)).fetchall()
            pk = tuple(row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            # The rowid alias (INTEGER PRIMARY KEY): never NULL, handed out by the database,
            # and with AUTOINCREMENT never an id used before, like a PostgreSQL sequence.
            integer_pk = len(pk) == 1 and any(
                r[1] == pk[0] and r[2].upper() == "INTEGER" for r in info
            )
            alias = pk[0] if integer_pk and "WITHOUT ROWID" not in table_sql.upper() else None
            autoincrement = re.search(r"\bAUTOINCREMENT\b", table_sql, re.IGNORECASE)
            columns = {}
            for _cid, column, declared, not_null, default, _pk in info:
                if column == alias:
                    generated = "autoincrement" if autoincrement else "rowid"
                    columns[column] = Column(_kind(declared), True, generated)
                else:
                    columns[column] = Column(_kind(declared), bool(not_null), normalise(default))
            unique = set()
            for _seq, index, is_unique, origin, partial in db.execute(
                "SELECT * FROM pragma_index_list(?)", (name,)
            ).fetchall():
                if origin == "u":
                    cols = db.execute(
                        "SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index,)
                    ).fetchall()
                    unique.add(tuple(c[0] for c in cols))
                if origin != "c":
                    continue  # primary key and UNIQUE constraints are compared above
                (index_sql,) = db.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)
                ).fetchone()
                items, predicate = _sqlite_index_sql(index_sql)
                keys = db.execute(
                    "SELECT seqno, cid, name, desc FROM pragma_index_xinfo(?) WHERE key "
                    "ORDER BY seqno",
                    (index,),
                ).fetchall()
                cols = []
                for seqno, cid, column, desc in keys:
                    # cid -2 is an expression, read from the statement; -1 the rowid.
                    text = items[seqno] if cid == -2 else (column or "rowid")
                    cols.append(text + (" desc" if desc else ""))
                assert bool(partial) == (predicate is not None), index_sql
                indexes[index] = Index(name, bool(is_unique), tuple(cols), normalise(predicate))
            foreign: dict[int, list[tuple[str, str | None, str, str, str]]] = {}
            for fk_id, _seq, ref, src, dst, on_update, on_delete, _match in db.execute(
                "SELECT * FROM pragma_foreign_key_list(?) ORDER BY id, seq", (name,)
            ).fetchall():
                foreign.setdefault(fk_id, []).append((ref, dst, src, on_update, on_delete))
            keys_out = set()
            for parts in foreign.values():
                ref = parts[0][0]
                if any(dst is None for _, dst, *_ in parts):  # REFERENCES t: its primary key
                    ref_pk = db.execute(
                        "SELECT name FROM pragma_table_info(?) WHERE pk ORDER BY pk", (ref,)
                    ).fetchall()
                    ref_cols = tuple(r[0] for r in ref_pk)
                else:
                    ref_cols = tuple(str(dst) for _, dst, *_ in parts)
                keys_out.add(
                    ForeignKey(tuple(p[2] for p in parts), ref, ref_cols, parts[0][3], parts[0][4])
                )
            tables[name] = Table(columns, pk, frozenset(unique), frozenset(keys_out))
    return Schema(tables, indexes)


def _pg_action(code: str) -> str:
    return {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}[
        code
    ]


_PG_COLUMNS = (
    "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
    "FROM information_schema.columns WHERE table_schema = current_schema()"
)
_PG_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
)
_PG_NAMES = (
    "array(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY AS k (attnum, n) "
    "JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum ORDER BY k.n)"
)
_PG_CONSTRAINTS = (
    "SELECT t.relname::text, c.contype::text, "
    + _PG_NAMES.format(keys="c.conkey", rel="c.conrelid")
    + ", r.relname::text, "
    + _PG_NAMES.format(keys="c.confkey", rel="c.confrelid")
    + ", c.confupdtype::text, c.confdeltype::text "
    "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
    "LEFT JOIN pg_class r ON r.oid = c.confrelid "
    "WHERE t.relnamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u', 'f')"
)
# Indexes made by CREATE INDEX: those behind a primary key or UNIQUE constraint are
# compared as constraints.
_PG_INDEXES = (
    "SELECT ic.relname::text, t.relname::text, i.indisunique, i.indnkeyatts, "
    "array(SELECT pg_get_indexdef(i.indexrelid, k, true) "
    "      FROM generate_series(1, i.indnatts) AS k ORDER BY k), "
    "array(SELECT (i.indoption[k - 1] & 1) = 1 "
    "      FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k), "
    "pg_get_expr(i.indpred, i.indrelid, true) "
    "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_class t ON t.oid = i.indrelid "
    "WHERE t.relnamespace = current_schema()::regnamespace AND NOT EXISTS ("
    "SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
    "AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))"
)


async def postgres_schema_of(conn: asyncpg.Connection) -> Schema:
    columns: dict[str, dict[str, Column]] = {r[0]: {} for r in await conn.fetch(_PG_TABLES)}
    for table, column, data_type, nullable, default, identity in await conn.fetch(_PG_COLUMNS):
        if table not in columns:
            continue  # a view
        serial = identity == "YES" or (default or "").startswith("nextval(")
        columns[table][column] = Column(
            _kind(data_type), nullable == "NO", "autoincrement" if serial else normalise(default)
        )
    pks: dict[str, tuple[str, ...]] = {}
    unique: dict[str, set[tuple[str, ...]]] = {t: set() for t in columns}
    foreign: dict[str, set[ForeignKey]] = {t: set() for t in columns}
    for table, kind, cols, ref, ref_cols, on_update, on_delete in await conn.fetch(_PG_CONSTRAINTS):
        if kind == "p":
            pks[table] = tuple(cols)
        elif kind == "u":
            unique[table].add(tuple(cols))
        else:
            foreign[table].add(
                ForeignKey(
                    tuple(cols), ref, tuple(ref_cols), _pg_action(on_update), _pg_action(on_delete)
                )
            )
    indexes: dict[str, Index] = {}
    for name, table, is_unique, nkeys, cols, descs, predicate in await conn.fetch(_PG_INDEXES):
        keys = tuple(
            (normalise(c) or "") + (" desc" if d else "")
            for c, d in zip(cols[:nkeys], descs, strict=True)
        )
        include = tuple(normalise(c) or "" for c in cols[nkeys:])
        indexes[name] = Index(table, is_unique, keys, normalise(predicate), include)
    tables = {
        t: Table(cols, pks.get(t, ()), frozenset(unique[t]), frozenset(foreign[t]))
        for t, cols in columns.items()
    }
    return Schema(tables, indexes)


# ---------------------------------------------------------------------------------------
# Comparing


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()  # a table, column, index or foreign key one side does not have


def differences(sqlite: Schema, postgres: Schema) -> dict[str, tuple[object, object]]:
    """Where the schemas differ, as {where: (SQLite's value, PostgreSQL's value)}."""
    found: dict[str, tuple[object, object]] = {}

    def note(where: str, ours: object, theirs: object) -> None:
        if ours != theirs:
            found[where] = (ours, theirs)

    for name in sorted(sqlite.tables.keys() | postgres.tables.keys()):
        s, p = sqlite.tables.get(name), postgres.tables.get(name)
        if s is None or p is None:
            note(f"table {name}", s or ABSENT, p or ABSENT)
            continue
        for column in sorted(s.columns.keys() | p.columns.keys()):
            sc, pc = s.columns.get(column), p.columns.get(column)
            if sc is None or pc is None:
                note(f"column {name}.{column}", sc or ABSENT, pc or ABSENT)
                continue
            for attr in ("kind", "not_null", "default"):
                note(f"column {name}.{column} {attr}", getattr(sc, attr), getattr(pc, attr))
        note(f"primary key of {name}", s.primary_key, p.primary_key)
        note(f"unique constraints of {name}", sorted(s.unique), sorted(p.unique))
        s_fks = {fk.columns: fk for fk in s.foreign_keys}
        p_fks = {fk.columns: fk for fk in p.foreign_keys}
        for cols in sorted(s_fks.keys() | p_fks.keys()):
            where = f"foreign key {name} ({', '.join(cols)})"
            note(where, s_fks.get(cols, ABSENT), p_fks.get(cols, ABSENT))
    for name in sorted(sqlite.indexes.keys() | postgres.indexes.keys()):
        si, pi = sqlite.indexes.get(name), postgres.indexes.get(name)
        if si is None or pi is None:
            note(f"index {name}", si or ABSENT, pi or ABSENT)
            continue
        for attr in (f.name for f in dataclasses.fields(Index)):
            note(f"index {name} {attr}", getattr(si, attr), getattr(pi, attr))
    return found


_PK_NULLS = (
    "SQLite lets a PRIMARY KEY column other than INTEGER hold NULL unless it says NOT NULL "
    "(a legacy quirk); the stores never write NULL there"
)
# {where: (SQLite's value, PostgreSQL's value, why the backends differ there)}. Exactly
# these values: any other difference, even at the same place, fails the test.
ALLOWED: dict[str, tuple[object, object, str]] = {
    "column slack_messages.id": (
        ABSENT,
        Column("integer", True, "autoincrement"),
        "SQLite keeps messages in recording order by its implicit rowid; PostgreSQL has none",
    ),
    "index slack_messages_incident columns": (
        ("incident_id",),
        ("incident_id", "id"),
        "every SQLite index ends in the rowid implicitly; PostgreSQL names the id column",
    ),
    "index outbox_order columns": (
        ("channel", "incident_id", "id"),
        ("channel", "coalesce(incident_id, 0)", "id"),
        "SQLite's queries match incident-less rows with IS; PostgreSQL's with coalesce(), "
        "since = never matches NULLs and IS NOT DISTINCT FROM uses no index",
    ),
    "column schedules.name not_null": (False, True, _PK_NULLS),
    "column installation.id not_null": (False, True, _PK_NULLS),
}


def unexplained(found: dict[str, tuple[object, object]]) -> list[str]:
    """The differences ALLOWED does not list, and the allowed ones that no longer occur."""
    lines = []
    for where, (ours, theirs) in found.items():
        allowed = ALLOWED.get(where)
        if allowed is None or allowed[:2] != (ours, theirs):
            lines.append(f"{where}: SQLite {ours!r}, PostgreSQL {theirs!r}")
    for where in ALLOWED:
        if where not in found:
            lines.append(f"{where}: allowed to differ, but agrees now: remove it from ALLOWED")
    return lines


# ---------------------------------------------------------------------------------------
# The tests


@dataclass(frozen=True)
class Opened:
    sqlite: Schema
    postgres: Schema
    sqlite_versions: list[int]
    postgres_versions: list[int]


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Opened]:
    """A fresh database of each backend, migrated by its store, and what it holds."""
    lite = make_store("sqlite", tmp_path)
    await lite.open()
    await lite.close()
    path = tmp_path / "s.db"
    with closing(sqlite3.connect(path)) as db:
        sqlite_versions = [
            r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY 1")
        ]
    async with postgres_schema() as schema:
        pg = make_store("postgres", tmp_path, schema)
        await pg.open()
        await pg.close()
        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
        try:
            postgres = await postgres_schema_of(conn)
            rows = await conn.fetch("SELECT version FROM schema_version ORDER BY 1")
        finally:
            await conn.close()
        yield Opened(sqlite_schema(path), postgres, sqlite_versions, [r[0] for r in rows])


async def test_both_backends_have_the_same_schema(opened: Opened) -> None:
    for schema in (opened.sqlite, opened.postgres):  # the catalogs were read at all
        assert {"incidents", "outbox", "schema_version"} <= schema.tables.keys()
        assert schema.indexes["incidents_open_key"].predicate == "status <> 'resolved'"
    problems = unexplained(differences(opened.sqlite, opened.postgres))
    if problems:
        pytest.fail(
            "SQLITE_MIGRATIONS and POSTGRES_MIGRATIONS leave different schemas; append a "
            "migration to one list (never edit a script already there), or list a difference "
            "inherent to the backend in ALLOWED:\n  " + "\n  ".join(problems),
            pytrace=False,
        )


async def test_each_database_is_at_the_end_of_its_own_list(opened: Opened) -> None:
    assert opened.sqlite_versions == list(range(1, len(SQLITE_MIGRATIONS) + 1))
    assert opened.postgres_versions == list(range(1, len(POSTGRES_MIGRATIONS) + 1))


def _with_table(schema: Schema, name: str, **changes: Any) -> Schema:
    return dataclasses.replace(
        schema, tables={**schema.tables, name: dataclasses.replace(schema.tables[name], **changes)}
    )


def _with_index(schema: Schema, name: str, **changes: Any) -> Schema:
    return dataclasses.replace(
        schema,
        indexes={**schema.indexes, name: dataclasses.replace(schema.indexes[name], **changes)},
    )


async def test_a_change_to_one_side_is_reported_by_name(opened: Opened) -> None:
    pg = opened.postgres
    incidents, outbox = pg.tables["incidents"], pg.tables["outbox"]
    changed = {
        "column incidents.extra": _with_table(
            pg, "incidents", columns={**incidents.columns, "extra": Column("text", False, None)}
        ),
        "column incidents.jira_key not_null": _with_table(
            pg,
            "incidents",
            columns={**incidents.columns, "jira_key": Column("text", True, None)},
        ),
        "column outbox.attempts default": _with_table(
            pg, "outbox", columns={**outbox.columns, "attempts": Column("integer", True, "1")}
        ),
        "foreign key outbox (incident_id)": _with_table(pg, "outbox", foreign_keys=frozenset()),
        "primary key of alerts": _with_table(pg, "alerts", primary_key=("fingerprint",)),
        "index timers_due predicate": _with_index(pg, "timers_due", predicate="status = 'fired'"),
        "index incidents_key unique": _with_index(pg, "incidents_key", unique=True),
        "index incidents_status": dataclasses.replace(
            pg, indexes={k: v for k, v in pg.indexes.items() if k != "incidents_status"}
        ),
    }
    before = set(unexplained(differences(opened.sqlite, pg)))  # whatever the real ones are
    for where, postgres in changed.items():
        after = unexplained(differences(opened.sqlite, postgres))
        assert [line.split(":")[0] for line in after if line not in before] == [where]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("status != 'resolved'", "(status <> 'resolved'::text)"),
        ("\"status\" = 'pending'", "STATUS = 'pending'::text"),
        ("coalesce(incident_id, 0)", "COALESCE(incident_id, (0)::bigint)"),
        ("(a = 1 AND b = 2) OR c = 3", "a = 1 and b = 2 or (c = 3)"),
        ("a = 1 AND (b = 2 OR c IS NULL)", "(a = 1) AND ((b = 2) OR (c IS NULL))"),
        ("''", "''::text"),
    ],
)
def test_equivalent_sql_normalises_alike(one: str, other: str) -> None:
    assert normalise(one) == normalise(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("a = 1 AND (b = 2 OR c = 3)", "a = 1 AND b = 2 OR c = 3"),
        ("status = 'Pending'", "status = 'pending'"),
        ("status = 'pending'", "status <> 'pending'"),
    ],
)
def test_different_sql_stays_different(one: str, other: str) -> None:
    assert normalise(one) != normalise(other)
