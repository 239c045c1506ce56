-- Read markers: each member's position in a room, the seq of the last message they have
-- read. Unread counts are counted from it, up to a cap, so no counter is written per
-- member on every send.
ALTER TABLE room_members ADD COLUMN last_read_seq BIGINT NOT NULL DEFAULT 0;
-- What was stored before markers existed counts as read: no room lights up on upgrade.
UPDATE room_members
    SET last_read_seq = (SELECT seq FROM rooms WHERE rooms.id = room_members.room_id);
-- Counting a room's unread messages reads this index only, never the message rows.
CREATE INDEX messages_unread ON messages (room_id, seq, deleted, sender_id);
