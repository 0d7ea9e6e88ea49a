"""The store: the only place with SQL. One SQLite file holds evaluation studies, their votes and the
live service's A/B impressions and outcomes.

    store = Store(db_path())          # --db, else KOGEN_DB, else $XDG_DATA_HOME/kogen/kogen.db
    store.add_vote(...)               # returns only after COMMIT: a 2xx built on it means the vote is on disk

Durability and concurrency
    - a connection per call (so per request): nothing is shared between waitress's threads;
    - journal_mode=WAL: readers never wait for the writer, the writer never waits for readers;
    - synchronous=FULL: each COMMIT fsyncs the WAL, so an acknowledged vote survives a killed process
      *and* a power cut (NORMAL would survive only the first; the fsync costs ~1 ms per vote);
    - every write is one `BEGIN IMMEDIATE ... COMMIT` transaction: it takes the write lock up front (no
      deadlocked read-then-write upgrades), waits up to BUSY_MS for it, and rolls back on any error,
      so nothing partial is ever written.

Tables: studies, systems (label, model, preset), prompts, outputs (a prompt's text from each system),
items (one comparison: a prompt and two systems), votes (UNIQUE(item, rater)), ab_impressions,
ab_outcomes (UNIQUE(impression, slot): one rating and one copy per impression), meta (the token secret).
"""
import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path

BUSY_MS = 10_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, settings TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS systems (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),
    label TEXT NOT NULL, model TEXT NOT NULL, preset TEXT NOT NULL, UNIQUE(study_id, label));
CREATE TABLE IF NOT EXISTS prompts (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),
    text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (prompt_id INTEGER NOT NULL REFERENCES prompts(id),
    system_id INTEGER NOT NULL REFERENCES systems(id), text TEXT NOT NULL, PRIMARY KEY (prompt_id, system_id));
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),
    prompt_id INTEGER NOT NULL REFERENCES prompts(id), system_a INTEGER NOT NULL REFERENCES systems(id),
    system_b INTEGER NOT NULL REFERENCES systems(id));
CREATE TABLE IF NOT EXISTS votes (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),
    item_id INTEGER NOT NULL REFERENCES items(id), rater TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_bad')), criteria TEXT, created REAL NOT NULL,
    UNIQUE(item_id, rater));
CREATE INDEX IF NOT EXISTS votes_by_rater ON votes(study_id, rater);
CREATE TABLE IF NOT EXISTS ab_impressions (id INTEGER PRIMARY KEY, session TEXT NOT NULL, arm TEXT NOT NULL,
    preset TEXT NOT NULL, prompt TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ab_outcomes (id INTEGER PRIMARY KEY,
    impression_id INTEGER NOT NULL REFERENCES ab_impressions(id),
    kind TEXT NOT NULL CHECK (kind IN ('up', 'down', 'copy')), slot TEXT NOT NULL, created REAL NOT NULL,
    UNIQUE(impression_id, slot));
"""


class StoreError(ValueError):
    """The database cannot be opened or used; the message says what to do (Korean)."""


class NotFound(StoreError):
    """A study, item or impression that does not exist."""


class Conflict(StoreError):
    """A second vote on the same item by the same rater, a second rating of one impression, a taken name."""


def db_path(path=None):
    """--db, else KOGEN_DB, else the user's data folder: never inside the repository."""
    path = path or os.environ.get("KOGEN_DB")
    if path:
        return Path(path).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "kogen" / "kogen.db"


class Store:
    """One SQLite file. Opened lazily: a service that nobody votes on never creates it."""

    def __init__(self, path=None):
        self.path = db_path(path)
        self._ready = False
        self.secret = None  # signs rating tokens; kept in the file so tokens outlive a restart
        self._init_lock = threading.Lock()

    def _connect(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None)
            con.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"데이터베이스 {self.path}를 열 수 없습니다({e}). --db 또는 KOGEN_DB로 쓸 수 있는 "
                             f"경로를 지정하세요.") from None
        con.row_factory = sqlite3.Row
        return con

    def open(self):
        """Create the file and its tables if needed (idempotent; `kogen serve --db` calls it to fail early)."""
        with self._init_lock:
            if self._ready:
                return self
            con = self._connect()
            try:
                if con.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":  # persistent, set once
                    raise StoreError(f"{self.path}: WAL 모드를 켤 수 없습니다(네트워크 파일 시스템?). 로컬 디스크의 "
                                     f"경로를 --db로 지정하세요.")
                with transaction(con):  # executescript would COMMIT first: one statement at a time instead
                    for statement in SCHEMA.split(";"):
                        con.execute(statement)
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))
                    self.secret = con.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0]
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}는 kogen 데이터베이스가 아닙니다({e}). 다른 --db 경로를 쓰세요.") from None
            finally:
                con.close()
            self._ready = True
        return self

    @contextlib.contextmanager
    def read(self):
        self.open()
        con = self._connect()
        try:
            yield con
        except sqlite3.OperationalError as e:  # locked past BUSY_MS, disk full, read-only file
            raise StoreError(f"데이터베이스를 지금 쓸 수 없습니다({e}). 잠시 후 다시 시도하세요.") from None
        finally:
            con.close()

    @contextlib.contextmanager
    def write(self):
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.read() as con, transaction(con):
            yield con

    # --- studies ------------------------------------------------------------------------------

    def study(self, name):
        with self.read() as con:
            row = con.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"'{name}' 평가 연구가 없습니다. kogen study list로 이름을 확인하세요.")
        return dict(row, settings=json.loads(row["settings"]))

    def create_study(self, name, settings, systems, prompts, outputs, pairs):
        """systems: [(label, model, preset)]; outputs[p][s]: prompt p's text from system s;
        pairs: [(s, t)] system indices compared on every prompt. All or nothing."""
        with self.write() as con:
            if con.execute("SELECT 1 FROM studies WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"'{name}' 평가 연구가 이미 있습니다. 다른 이름을 쓰세요.")
            study_id = con.execute("INSERT INTO studies (name, settings, created) VALUES (?, ?, ?)",
                                   (name, json.dumps(settings, ensure_ascii=False), time.time())).lastrowid
            sys_ids = [con.execute("INSERT INTO systems (study_id, label, model, preset) VALUES (?, ?, ?, ?)",
                                   (study_id, *s)).lastrowid for s in systems]
            for prompt, texts in zip(prompts, outputs):
                pid = con.execute("INSERT INTO prompts (study_id, text) VALUES (?, ?)", (study_id, prompt)).lastrowid
                con.executemany("INSERT INTO outputs VALUES (?, ?, ?)", [(pid, s, t) for s, t in zip(sys_ids, texts)])
                con.executemany("INSERT INTO items (study_id, prompt_id, system_a, system_b) VALUES (?, ?, ?, ?)",
                                [(study_id, pid, sys_ids[s], sys_ids[t]) for s, t in pairs])
        return study_id

    def studies(self):
        with self.read() as con:
            return [dict(r) for r in con.execute(
                "SELECT s.name, s.created, (SELECT group_concat(label, ', ') FROM systems WHERE study_id = s.id) "
                "AS systems, (SELECT count(*) FROM prompts WHERE study_id = s.id) AS prompts, "
                "(SELECT count(*) FROM items WHERE study_id = s.id) AS items, "
                "(SELECT count(*) FROM votes WHERE study_id = s.id) AS votes FROM studies s ORDER BY s.id")]

    def systems(self, study_id):
        with self.read() as con:
            return [dict(r) for r in con.execute("SELECT id, label, model, preset FROM systems WHERE study_id = ? "
                                                 "ORDER BY id", (study_id,))]

    def next_item(self, study_id, rater):
        """An item this rater has not voted on, among the least-voted ones (so votes spread evenly),
        with its prompt and both outputs; None when the rater has seen them all."""
        with self.read() as con:
            row = con.execute(
                "SELECT i.id, p.text AS prompt, oa.text AS output_a, ob.text AS output_b, "
                "(SELECT count(*) FROM votes v WHERE v.item_id = i.id) AS n FROM items i "
                "JOIN prompts p ON p.id = i.prompt_id "
                "JOIN outputs oa ON oa.prompt_id = i.prompt_id AND oa.system_id = i.system_a "
                "JOIN outputs ob ON ob.prompt_id = i.prompt_id AND ob.system_id = i.system_b "
                "WHERE i.study_id = ? AND i.id NOT IN (SELECT item_id FROM votes WHERE study_id = ? AND rater = ?) "
                "ORDER BY n, random() LIMIT 1", (study_id, study_id, rater)).fetchone()
            total = con.execute("SELECT count(*) FROM items WHERE study_id = ?", (study_id,)).fetchone()[0]
            done = con.execute("SELECT count(*) FROM votes WHERE study_id = ? AND rater = ?",
                               (study_id, rater)).fetchone()[0]
        return (dict(row) if row else None), done, total

    def add_vote(self, study_id, item_id, rater, choice, criteria):
        """Insert one vote, committed before returning; returns (vote id, system a, system b)."""
        with self.write() as con:
            pair = con.execute(
                "SELECT a.label AS a_label, a.model AS a_model, a.preset AS a_preset, b.label AS b_label, "
                "b.model AS b_model, b.preset AS b_preset FROM items i JOIN systems a ON a.id = i.system_a "
                "JOIN systems b ON b.id = i.system_b WHERE i.id = ? AND i.study_id = ?",
                (item_id, study_id)).fetchone()
            if pair is None:
                raise NotFound(f"이 연구에 {item_id}번 항목이 없습니다. 다음 항목을 다시 받으세요.")
            try:
                vote_id = con.execute(
                    "INSERT INTO votes (study_id, item_id, rater, choice, criteria, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (study_id, item_id, rater, choice, json.dumps(criteria) if criteria else None,
                     time.time())).lastrowid
            except sqlite3.IntegrityError:
                raise Conflict("이미 이 항목에 투표했습니다. 한 평가자는 한 항목에 한 번만 투표할 수 있습니다. "
                               "다음 항목으로 넘어가세요.") from None
        side = lambda k: dict(system=pair[f"{k}_label"], model=pair[f"{k}_model"], preset=pair[f"{k}_preset"])  # noqa: E731
        return vote_id, side("a"), side("b")

    def votes(self, study_id):
        """Every vote with its prompt, the two systems and their outputs, oldest first."""
        with self.read() as con:
            return [dict(r, criteria=json.loads(r["criteria"]) if r["criteria"] else {}) for r in con.execute(
                "SELECT v.id, v.item_id, v.rater, v.choice, v.criteria, v.created, p.text AS prompt, "
                "a.label AS system_a, b.label AS system_b, oa.text AS output_a, ob.text AS output_b "
                "FROM votes v JOIN items i ON i.id = v.item_id JOIN prompts p ON p.id = i.prompt_id "
                "JOIN systems a ON a.id = i.system_a JOIN systems b ON b.id = i.system_b "
                "JOIN outputs oa ON oa.prompt_id = i.prompt_id AND oa.system_id = i.system_a "
                "JOIN outputs ob ON ob.prompt_id = i.prompt_id AND ob.system_id = i.system_b "
                "WHERE v.study_id = ? ORDER BY v.id", (study_id,))]

    # --- A/B tests of the live service -----------------------------------------------------------

    def add_impression(self, session, arm, preset, prompt):
        with self.write() as con:
            return con.execute("INSERT INTO ab_impressions (session, arm, preset, prompt, created) "
                               "VALUES (?, ?, ?, ?, ?)", (session, arm, preset, prompt, time.time())).lastrowid

    def add_outcome(self, impression_id, session, kind):
        """Thumbs up/down (one per impression) or a copy; only the session that saw the output may rate it."""
        with self.write() as con:
            row = con.execute("SELECT 1 FROM ab_impressions WHERE id = ? AND session = ?",
                              (impression_id, session)).fetchone()
            if row is None:
                raise NotFound(f"{impression_id}번 노출(생성 결과)이 이 세션에 없습니다. 페이지에서 다시 생성하세요.")
            try:
                return con.execute("INSERT INTO ab_outcomes (impression_id, kind, slot, created) VALUES (?, ?, ?, ?)",
                                   (impression_id, kind, "copy" if kind == "copy" else "rating", time.time())).lastrowid
            except sqlite3.IntegrityError:
                raise Conflict("이 결과는 이미 평가했습니다(좋아요/싫어요는 한 번, 복사는 한 번만 셉니다).") from None

    def ab_counts(self):
        """Per (arm, preset): impressions, up, down, copy, and positive = impressions with an up or a copy."""
        with self.read() as con:
            return [dict(r) for r in con.execute(
                "SELECT i.arm, i.preset, count(*) AS impressions, sum(o.up) AS up, sum(o.down) AS down, "
                "sum(o.copy) AS copy, sum(o.up > 0 OR o.copy > 0) AS positive FROM ab_impressions i "
                "LEFT JOIN (SELECT impression_id, sum(kind = 'up') AS up, sum(kind = 'down') AS down, "
                "sum(kind = 'copy') AS copy FROM ab_outcomes GROUP BY impression_id) o ON o.impression_id = i.id "
                "GROUP BY i.arm, i.preset ORDER BY i.arm, i.preset")]


@contextlib.contextmanager
def transaction(con):
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
