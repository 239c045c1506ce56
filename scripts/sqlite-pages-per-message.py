#!/usr/bin/env python3
"""Log pages SQLite writes per stored message, for the message schema and variants.

Usage: python3 scripts/sqlite-pages-per-message.py VARIANT BATCH
VARIANT: base (the schema of migrations/sqlite), nounread (without messages_unread),
nofts (without the search index), worowid (messages WITHOUT ROWID keyed (room_id, seq)).
BATCH: messages per commit. 287 rooms of 4-10 of 2,000 users, as `sotto-bench capacity`;
20,000 messages of history first, then 20,000 measured. The log is not checkpointed while
measuring, so its growth is what the commits wrote. Writes under /tmp/walx.
"""
import os, random, sqlite3, sys
variant = sys.argv[1]; B = int(sys.argv[2]); N = 20000
os.makedirs("/tmp/walx", exist_ok=True)
path = f"/tmp/walx/{variant}-{B}.db"
for f in (path, path+"-wal", path+"-shm"):
    if os.path.exists(f): os.remove(f)
c = sqlite3.connect(path, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA wal_autocheckpoint=0")
c.executescript("""
CREATE TABLE users (id TEXT PRIMARY KEY);
CREATE TABLE rooms (id TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE room_members (room_id TEXT, user_id TEXT, last_read_seq INTEGER DEFAULT 0, PRIMARY KEY (room_id, user_id));
CREATE INDEX room_members_by_user ON room_members (user_id);
""")
if variant in ("base","nofts","nounread"):
    c.executescript("""
CREATE TABLE messages (room_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, version_seq INTEGER NOT NULL,
 sender_id TEXT NOT NULL, body_text TEXT, ciphertext TEXT, mentions TEXT NOT NULL DEFAULT '[]', content_hash TEXT NOT NULL,
 created_at INTEGER NOT NULL, edited_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (room_id, id), UNIQUE (room_id, seq));
CREATE INDEX messages_by_version ON messages (room_id, version_seq);
""")
    if variant != "nounread":
        c.execute("CREATE INDEX messages_unread ON messages (room_id, seq, deleted, sender_id)")
elif variant == "worowid":
    c.executescript("""
CREATE TABLE messages (room_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, version_seq INTEGER NOT NULL,
 sender_id TEXT NOT NULL, body_text TEXT, ciphertext TEXT, mentions TEXT NOT NULL DEFAULT '[]', content_hash TEXT NOT NULL,
 created_at INTEGER NOT NULL, edited_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (room_id, seq), UNIQUE (room_id, id)) WITHOUT ROWID;
CREATE INDEX messages_by_version ON messages (room_id, version_seq);
""")
if variant != "nofts":
    c.executescript("""
CREATE TABLE message_search_docs (doc INTEGER PRIMARY KEY, room_id TEXT NOT NULL, message_id TEXT NOT NULL, UNIQUE (room_id, message_id));
CREATE VIRTUAL TABLE message_search USING fts5 (body, content = '', tokenize = 'unicode61 remove_diacritics 0');
CREATE TRIGGER message_search_insert AFTER INSERT ON messages WHEN new.body_text IS NOT NULL AND NOT new.deleted
BEGIN
    INSERT OR IGNORE INTO message_search_docs (room_id, message_id) VALUES (new.room_id, new.id);
    INSERT INTO message_search (rowid, body) SELECT doc, new.body_text FROM message_search_docs WHERE room_id = new.room_id AND message_id = new.id;
END;
""")
rnd = random.Random(1)
hexid = lambda: "%032x" % rnd.getrandbits(128)
users = [hexid() for _ in range(2000)]; rooms = [hexid() for _ in range(287)]
c.execute("BEGIN")
c.executemany("INSERT INTO users VALUES (?)", [(u,) for u in users])
c.executemany("INSERT INTO rooms (id) VALUES (?)", [(r,) for r in rooms])
members = {r: rnd.sample(users, rnd.randint(4,10)) for r in rooms}
c.executemany("INSERT INTO room_members (room_id,user_id) VALUES (?,?)", [(r,u) for r in rooms for u in members[r]])
c.execute("COMMIT")
# warm: preload 50k messages? keep it smaller: 20k
words = "alpha beta gamma delta team meeting lunch deploy review notes ship today tomorrow check".split()
def batch(n):
    c.execute("BEGIN IMMEDIATE")
    for _ in range(n):
        r = rnd.choice(rooms); s = rnd.choice(members[r])
        seq = c.execute("UPDATE rooms SET seq = seq + 1 WHERE id = ? RETURNING seq", (r,)).fetchone()[0]
        mid = hexid()
        c.execute("SELECT * FROM messages WHERE room_id = ? AND id = ?", (r, mid)).fetchone()
        body = " ".join(rnd.choice(words) for _ in range(12))
        if variant == "worowid":
            c.execute("INSERT INTO messages (room_id, seq, id, version_seq, sender_id, body_text, ciphertext, mentions, content_hash, created_at) VALUES (?,?,?,?,?,?,NULL,'[]',?,?)", (r, seq, mid, seq, s, body, "h"*64, 1700000000000))
        else:
            c.execute("INSERT INTO messages (room_id, id, seq, version_seq, sender_id, body_text, ciphertext, mentions, content_hash, created_at) VALUES (?,?,?,?,?,?,NULL,'[]',?,?)", (r, mid, seq, seq, s, body, "h"*64, 1700000000000))
        c.execute("UPDATE room_members SET last_read_seq = ? WHERE room_id = ? AND user_id = ? AND last_read_seq < ?", (seq, r, s, seq))
    c.execute("COMMIT")
for _ in range(20000 // B): batch(B)   # warm-up history
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
w0 = os.path.getsize(path+"-wal") if os.path.exists(path+"-wal") else 0
for _ in range(N // B): batch(B)
wal = os.path.getsize(path+"-wal") - w0
pages = wal/4120
print(f"{variant:9} {B:4} messages a commit: log {wal/N/1024:5.1f} KiB a message, {pages/(N//B):6.1f} pages a commit")
