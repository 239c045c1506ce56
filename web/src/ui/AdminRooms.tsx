// Administration → Rooms: an administrator adds people to, or removes them from, any room
// but a direct message, without the room's say. An encrypted room's signed state is left
// as its members signed it, so they see the change for what it is.

import { useEffect, useId, useState } from "preact/hooks";
import type { AdminRoom, Member } from "../api/types";
import type { Workspace } from "../state/workspace";
import { useAction } from "./hooks";
import { ErrorText, Field, Icon } from "./kit";

function roomLabel(r: AdminRoom): string {
  const name = r.name ?? r.id;
  const flags = [r.kind, r.private ? "private" : "public", ...(r.encrypted ? ["encrypted"] : [])];
  return `${name} (${flags.join(", ")})`;
}

export function RoomsSection(props: { ws: Workspace }) {
  const { ws } = props;
  const headId = useId();
  const [rooms, setRooms] = useState<AdminRoom[] | null>(null);
  const [roomId, setRoomId] = useState("");
  const [members, setMembers] = useState<Member[] | null>(null);
  const [username, setUsername] = useState("");
  const [status, setStatus] = useState<string | null>(null);
  const load = useAction(async () => setRooms((await ws.adminRooms()).filter((r) => r.kind !== "direct")));
  const pick = useAction(async (id: string) => {
    setRoomId(id);
    setMembers(null);
    setStatus(null);
    if (id) setMembers(await ws.adminRoomMembers(id));
  });
  const room = rooms?.find((r) => r.id === roomId) ?? null;
  const add = useAction(async () => {
    const name = username.trim().replace(/^@/, "");
    setMembers(await ws.adminAddMember(roomId, name));
    setUsername("");
    setStatus(
      room?.encrypted
        ? `${name} was added. The room's members see them as added by an administrator, not verified by the room: they get no keys.`
        : `${name} was added.`,
    );
  });
  const remove = useAction(async (m: Member) => {
    await ws.adminRemoveMember(roomId, m.user_id);
    setMembers(await ws.adminRoomMembers(roomId));
    setStatus(
      room?.encrypted
        ? `${m.username} was removed. The room's signed state still lists them until an owner removes them there; its members are shown this.`
        : `${m.username} was removed.`,
    );
  });
  useEffect(() => {
    void load.run();
  }, []);

  return (
    <section class="page-section" aria-labelledby={headId}>
      <div class="section-head">
        <h2 id={headId}>Rooms</h2>
        {/* Admins are in few rooms, so no event tells this page that one was created. */}
        <button type="button" class="button" disabled={load.busy} onClick={() => void load.run()}>
          Refresh list
        </button>
      </div>
      <p class="muted-text">
        Add people to a room or remove them without its owners. In an encrypted room this does not change what its members signed: they see
        whom an administrator added or removed, and nobody added here gets the room's keys.
      </p>
      <ErrorText error={load.error ?? pick.error} />
      {rooms === null ? (
        load.busy && <p class="muted-text">Loading rooms…</p>
      ) : (
        <Field label="Room">
          {(id) => (
            <select id={id} value={roomId} onChange={(e) => void pick.run(e.currentTarget.value)}>
              <option value="">Choose a room</option>
              {rooms.map((r) => (
                <option key={r.id} value={r.id}>
                  {roomLabel(r)}
                </option>
              ))}
            </select>
          )}
        </Field>
      )}
      <p class="status-text" role="status">
        {status}
      </p>
      {room && members && (
        <>
          <form
            class="invite-form"
            onSubmit={(e) => {
              e.preventDefault();
              setStatus(null);
              void add.run();
            }}
          >
            <label for="admin-add-member">Add to this room</label>
            <div class="inline">
              <input id="admin-add-member" value={username} placeholder="username" onInput={(e) => setUsername(e.currentTarget.value)} />
              <button type="submit" class="button primary" disabled={!username.trim() || add.busy}>
                Add
              </button>
            </div>
          </form>
          <ErrorText error={add.error ?? remove.error} />
          <ul class="member-list" aria-label={`Members of ${room.name ?? room.id}`}>
            {members.map((m) => (
              <li key={m.user_id}>
                <span class="member-name">
                  {ws.displayName(m.user_id)} <span class="muted">@{m.username}</span>
                </span>
                {m.owner && <span class="tag">Owner</span>}
                {m.forced_by && <span class="tag">Added by an administrator</span>}
                <button
                  type="button"
                  class="icon-button"
                  aria-label={`Remove ${m.username} from ${room.name ?? "the room"}`}
                  onClick={() => (setStatus(null), void remove.run(m))}
                >
                  <Icon name="close" />
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
