-- File metadata. The bytes live in the blob directory (`<data-dir>/blobs/<id>`).
CREATE TABLE files (
    id           TEXT PRIMARY KEY NOT NULL,
    room_id      TEXT NOT NULL REFERENCES rooms (id),
    uploader_id  TEXT NOT NULL REFERENCES users (id),
    name         TEXT,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX files_by_room ON files (room_id, created_at);
