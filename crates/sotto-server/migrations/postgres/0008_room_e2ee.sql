-- End-to-end encrypted rooms: each room's signed state chain (docs/protocol.md §5), each
-- member's sealed copies of the room's epoch keys (§6), and the rooms that need a new
-- epoch for a reason the chain does not show (a member's key reset). The server writes
-- no statement and holds no key: it stores what members sent, after key-free checks.
CREATE TABLE room_statements (
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- The statement's own sequence number; the primary key is the compare-and-set:
    -- of two statements extending the same head, only the first insert succeeds.
    seq        BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    statement  BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, seq)
);

CREATE TABLE room_keys (
    room_id        TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- 32 lowercase hex digits.
    epoch_id       TEXT NOT NULL,
    recipient_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    distributor_id TEXT NOT NULL,
    sealed         BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (room_id, epoch_id, recipient_id)
);
CREATE INDEX room_keys_by_recipient ON room_keys (recipient_id);

CREATE TABLE room_rotations (
    room_id TEXT PRIMARY KEY NOT NULL REFERENCES rooms (id) ON DELETE CASCADE
);
