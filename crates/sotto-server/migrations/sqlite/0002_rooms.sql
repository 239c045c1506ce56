-- Rooms, their members and their messages.
CREATE TABLE rooms (
    id         TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('channel', 'direct', 'team', 'discussion')),
    private    INTEGER NOT NULL,
    name       TEXT,
    topic      TEXT NOT NULL DEFAULT '',
    parent_id  TEXT REFERENCES rooms (id),
    encrypted  INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    -- The latest room sequence number; every change takes the next one.
    seq        INTEGER NOT NULL DEFAULT 0,
    -- Direct messages only: the sorted member ids, so a set of people has one DM.
    dm_key     TEXT UNIQUE
);
CREATE INDEX rooms_public ON rooms (private, kind);

CREATE TABLE room_members (
    room_id   TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    owner     INTEGER NOT NULL DEFAULT 0,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id);

CREATE TABLE messages (
    room_id      TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    version_seq  INTEGER NOT NULL,
    sender_id    TEXT NOT NULL REFERENCES users (id),
    body_text    TEXT,
    ciphertext   TEXT,
    -- JSON array of mentioned user ids.
    mentions     TEXT NOT NULL DEFAULT '[]',
    -- SHA-256 of the content as first sent, to tell a retry from a reused id.
    content_hash TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    edited_at    INTEGER,
    deleted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, id),
    UNIQUE (room_id, seq)
);
