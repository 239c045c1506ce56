-- Full-text search over plaintext messages (C9).
--
-- `message_search_docs` gives each searchable message a stable integer key, the rowid of
-- its entry in the FTS5 index (the implicit rowid of `messages` may change on VACUUM).
-- The index is contentless: it keeps only the terms, the text stays in `messages`.
-- Triggers keep both in step: a message is indexed while it has `body_text` and is not
-- deleted, so tombstones and ciphertext-only messages are never searchable.
-- Diacritics are kept, as PostgreSQL's `simple` configuration does.
CREATE TABLE message_search_docs (
    doc        INTEGER PRIMARY KEY,
    room_id    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    UNIQUE (room_id, message_id)
);

CREATE VIRTUAL TABLE message_search USING fts5 (
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
WHEN new.body_text IS NOT NULL AND NOT new.deleted
BEGIN
    INSERT OR IGNORE INTO message_search_docs (room_id, message_id) VALUES (new.room_id, new.id);
    INSERT INTO message_search (rowid, body)
        SELECT doc, new.body_text FROM message_search_docs
        WHERE room_id = new.room_id AND message_id = new.id;
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF body_text, deleted ON messages
BEGIN
    DELETE FROM message_search WHERE rowid =
        (SELECT doc FROM message_search_docs WHERE room_id = old.room_id AND message_id = old.id);
    DELETE FROM message_search_docs
        WHERE room_id = old.room_id AND message_id = old.id
        AND (new.body_text IS NULL OR new.deleted);
    INSERT OR IGNORE INTO message_search_docs (room_id, message_id)
        SELECT new.room_id, new.id WHERE new.body_text IS NOT NULL AND NOT new.deleted;
    INSERT INTO message_search (rowid, body)
        SELECT doc, new.body_text FROM message_search_docs
        WHERE room_id = new.room_id AND message_id = new.id
        AND new.body_text IS NOT NULL AND NOT new.deleted;
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM message_search WHERE rowid =
        (SELECT doc FROM message_search_docs WHERE room_id = old.room_id AND message_id = old.id);
    DELETE FROM message_search_docs WHERE room_id = old.room_id AND message_id = old.id;
END;

-- Messages stored before this migration.
INSERT INTO message_search_docs (room_id, message_id)
    SELECT room_id, id FROM messages WHERE body_text IS NOT NULL AND NOT deleted;
INSERT INTO message_search (rowid, body)
    SELECT d.doc, m.body_text FROM message_search_docs d
    JOIN messages m ON m.room_id = d.room_id AND m.id = d.message_id;
