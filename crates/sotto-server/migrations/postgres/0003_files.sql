-- File metadata, and the bytes themselves, so several nodes can share them.
CREATE TABLE files (
    id           TEXT PRIMARY KEY NOT NULL,
    room_id      TEXT NOT NULL REFERENCES rooms (id),
    uploader_id  TEXT NOT NULL REFERENCES users (id),
    name         TEXT,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX files_by_room ON files (room_id, created_at);

-- A blob is readable once `complete`; an upload that fails is deleted, and rows left
-- incomplete by a crash are never served.
CREATE TABLE blobs (
    id         TEXT PRIMARY KEY NOT NULL,
    size       BIGINT NOT NULL DEFAULT 0,
    complete   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

-- The bytes in fixed-size chunks (the last one shorter), numbered from 0.
CREATE TABLE blob_chunks (
    blob_id TEXT NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (blob_id, idx)
);
-- Uploads are often compressed already: store chunks out of line without trying again.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
