-- Room and membership changes, one row per room seq they took, written in the same
-- transaction as the change. Message changes are not logged here: they are read from
-- `messages` by `version_seq`, so a deleted message keeps no content anywhere.
CREATE TABLE room_events (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    -- The event type, and the user it is about (member events), for lookups.
    kind    TEXT NOT NULL,
    subject TEXT,
    -- The event as JSON, without room id and seq.
    payload TEXT NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE INDEX room_events_by_subject ON room_events (room_id, subject, kind);
CREATE INDEX messages_by_version ON messages (room_id, version_seq);
