-- Members an administrator added without the room's say: the admin's user id (or
-- `operator`). Shown on the member list, so clients can say why an encrypted room's
-- signed state does not vouch for them.
ALTER TABLE room_members ADD COLUMN forced_by TEXT;
