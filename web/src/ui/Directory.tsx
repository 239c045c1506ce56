// The directory: public channels and teams anyone can join (C3, C4).

import { useEffect, useId, useState } from "preact/hooks";
import type { Room } from "../api/types";
import type { Workspace } from "../state/workspace";
import { useAction, useEmitter } from "./hooks";
import { Dialog, ErrorText, Icon } from "./kit";
import "./pages.css";

type KindFilter = "all" | "channel" | "team";

export function DirectoryDialog(props: { ws: Workspace; onClose: () => void; onJoined: (roomId: string) => void }) {
  const { ws } = props;
  useEmitter(ws);
  const filterId = useId();
  const kindId = useId();
  const [rooms, setRooms] = useState<Room[] | null>(null);
  const [filter, setFilter] = useState("");
  const [kind, setKind] = useState<KindFilter>("all");
  const [joining, setJoining] = useState<string | null>(null);
  const load = useAction(async () => setRooms(await ws.publicRooms()));
  const join = useAction(async (room: Room) => {
    setJoining(room.id);
    try {
      await ws.join(room.id);
    } finally {
      setJoining(null);
    }
    props.onJoined(room.id);
  });
  useEffect(() => {
    void load.run();
  }, []);

  const needle = filter.trim().toLowerCase();
  const shown = (rooms ?? [])
    .filter((r) => kind === "all" || r.kind === kind)
    .filter((r) => !needle || (r.name ?? "").toLowerCase().includes(needle) || r.topic.toLowerCase().includes(needle))
    .sort((a, b) => (a.name ?? "").localeCompare(b.name ?? ""));

  return (
    <Dialog title="Directory" wide onClose={props.onClose}>
      <p class="section-lead">Public channels and teams of this workspace. Anyone can join them.</p>
      <div class="directory-filters">
        <div class="search-box">
          <Icon name="search" />
          <label for={filterId} class="visually-hidden">
            Filter by name or topic
          </label>
          <input id={filterId} type="search" value={filter} autoFocus autoComplete="off" placeholder="Filter by name or topic" onInput={(e) => setFilter(e.currentTarget.value)} />
        </div>
        <label for={kindId} class="visually-hidden">
          Kind
        </label>
        <select id={kindId} value={kind} onChange={(e) => setKind(e.currentTarget.value as KindFilter)}>
          <option value="all">Channels and teams</option>
          <option value="channel">Channels</option>
          <option value="team">Teams</option>
        </select>
      </div>
      <ErrorText error={load.error ?? join.error} />
      {rooms === null ? (
        load.busy && <p class="muted-text">Loading…</p>
      ) : shown.length === 0 ? (
        <div class="empty-state">
          <p>{rooms.length === 0 ? "There are no public channels or teams yet." : "Nothing matches this filter."}</p>
        </div>
      ) : (
        <ul class="directory-list" aria-label="Public channels and teams">
          {shown.map((r) => {
            const name = r.name ?? "(unnamed)";
            const member = r.member || ws.rooms.has(r.id);
            return (
              <li key={r.id} class="directory-item">
                <span class="directory-icon">
                  <Icon name={r.kind === "team" ? "team" : "hash"} />
                </span>
                <span class="directory-text">
                  <span class="directory-name">
                    {name}
                    <span class="pill">{r.kind === "team" ? "Team" : "Channel"}</span>
                    {member && <span class="pill ok">Joined</span>}
                  </span>
                  {r.topic && <span class="directory-topic">{r.topic}</span>}
                </span>
                {member ? (
                  <button type="button" class="button small" aria-label={`Open ${name}`} onClick={() => props.onJoined(r.id)}>
                    Open
                  </button>
                ) : (
                  <button type="button" class="button small primary" aria-label={`Join ${name}`} disabled={joining !== null} onClick={() => void join.run(r)}>
                    {joining === r.id ? "Joining…" : "Join"}
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </Dialog>
  );
}
