-- The key directory (each user's public bundle) and each user's encrypted key backup.
-- Both are opaque to the server beyond the checks it makes on upload; the backup is
-- readable only by its owner through the API.
CREATE TABLE key_bundles (
    user_id      TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bundle       BYTEA NOT NULL,
    published_at BIGINT NOT NULL
);

CREATE TABLE key_backups (
    user_id    TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    backup     BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
