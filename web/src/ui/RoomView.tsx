// One room: header (name, key icon, topic, members, kebab menu), the live message list
// and the composer. Encryption, export and OTR hook in through the room menu.

import { useEffect, useState } from "preact/hooks";
import type { Room } from "../api/types";
import type { MessageView, Workspace } from "../state/workspace";
import { useEmitter } from "./hooks";
import { Icon, Menu, Panel } from "./kit";
import { MessageRow } from "./Message";
import { Composer } from "./Composer";
import { MembersPanel } from "./Members";
import { MessageList } from "./MessageList";
import { ExportPanel } from "./Export";
import { OtrInvitation, OtrPanel } from "./Otr";

type Side = "members" | "export" | "otr" | null;

export function RoomView(props: { ws: Workspace; room: Room; onSearch: () => void; onLeft: () => void; onCreateDiscussion: () => void }) {
  const { ws, room } = props;
  useEmitter(ws);
  const [side, setSide] = useState<Side>(null);
  const [menuError, setMenuError] = useState<string | null>(null);
  // Export: messages are picked with checkboxes, then the panel downloads them (E9).
  const [selecting, setSelecting] = useState(false);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const t = ws.timeline(room.id);
  const title = ws.roomTitle(room);
  const members = ws.members.get(room.id) ?? [];
  const owner = members.some((m) => m.user_id === ws.me.id && m.owner);

  useEffect(() => {
    if (!t.loaded) void ws.loadHistory(room.id).then(() => ws.markRead(room.id));
    else void ws.markRead(room.id);
    if (!ws.members.has(room.id)) void ws.loadMembers(room.id);
  }, [room.id]);

  const stored = t.messages.map((m) => t.views.get(m.id)).filter((v): v is MessageView => !!v);
  // Off-the-record messages of this session sit among the stored ones, by position.
  const otrViews = ws.otr.messages(room.id);
  const views = otrViews.length ? [...stored, ...otrViews].sort((a, b) => a.seq - b.seq) : stored;
  // OTR is offered only where it can run: a DM with exactly one other person (O1, O2).
  const otrOn = !!ws.settings?.["otr.enabled"] && room.kind === "direct" && members.length === 2;
  const offRecord = ws.otr.active(room.id);
  const act = (fn: () => Promise<unknown>) => () => {
    setMenuError(null);
    fn().catch((e: unknown) => setMenuError(e instanceof Error ? e.message : String(e)));
  };
  const e2eOn = !!ws.settings?.["e2e.enabled"];
  const canToggle = e2eOn && (room.kind === "direct" || (room.private && owner));
  const menu = [
    ...(canToggle
      ? [
          {
            label: room.encrypted ? "Disable E2E" : "Enable E2E",
            onSelect: act(async () => {
              if (!ws.e2e.unlocked) throw new Error("Enter your E2EE password first: changing a room's encryption needs your keys.");
              await ws.e2e.setEncryption(room, !room.encrypted);
              await ws.refreshRoom(room.id);
            }),
          },
        ]
      : []),
    ...(room.encrypted && ws.e2e.unlocked ? [{ label: "Rotate key", onSelect: act(() => ws.e2e.rotate(room.id)) }] : []),
    ...(otrOn ? [{ label: "OTR", onSelect: () => setSide("otr") }] : []),
    { label: "Export messages", onSelect: () => (setSelecting(true), setSelected(new Set()), setSide(null)) },
    { label: "Members", onSelect: () => setSide("members") },
    { label: "Search messages", onSelect: props.onSearch },
    ...(room.kind === "channel" || room.kind === "team" ? [{ label: "Create discussion", onSelect: props.onCreateDiscussion }] : []),
    ...(room.kind !== "direct" ? [{ label: "Leave room", danger: true, onSelect: act(() => ws.leave(room.id).then(props.onLeft)) }] : []),
  ];

  return (
    <div class="room">
      <main class="room-main" aria-labelledby="room-title">
        <header class="room-head">
          <div class="room-title">
            <h1 id="room-title">
              {room.kind === "direct" ? null : <Icon name={room.private ? "lock" : "hash"} class="title-icon" />}
              {title}
              {room.encrypted && <Icon name="key" class="title-key" title="Encrypted room" />}
              {offRecord && (
                <span class="tag otr-tag">
                  <Icon name="key-bold" /> Off the record
                </span>
              )}
            </h1>
            {room.topic && <p class="topic">{room.topic}</p>}
          </div>
          <button type="button" class="icon-button" aria-label="Members" onClick={() => setSide(side === "members" ? null : "members")}>
            <Icon name="people" />
          </button>
          <Menu label="Room options" icon="kebab" items={menu} />
        </header>
        {menuError && (
          <p class="error banner-error" role="alert">
            {menuError}
          </p>
        )}
        <MessageList
          label={`Messages in ${title}`}
          items={views.map((v) => ({
            key: v.id,
            render: () => (
              <MessageRow
                ws={ws}
                view={v}
                actions={{
                  owner,
                  edit: (id, text) => ws.edit(room.id, id, text),
                  remove: (id) => ws.remove(room.id, id),
                  download: (view) => ws.download(view.file!),
                  select: selecting
                    ? {
                        selected: selected.has(v.id),
                        toggle: () => {
                          const next = new Set(selected);
                          if (!next.delete(v.id)) next.add(v.id);
                          setSelected(next);
                        },
                      }
                    : undefined,
                }}
              />
            ),
          }))}
          loading={t.loading}
          atStart={t.loaded && !t.hasMoreBefore}
          onTop={() => void ws.loadHistory(room.id, true)}
          empty={<p class="empty-room muted">No messages yet. Say hello!</p>}
        />
        {otrOn && <OtrInvitation ws={ws} otr={ws.otr} roomId={room.id} />}
        {selecting ? (
          <div class="select-footer" role="region" aria-label="Export selection">
            <button type="button" class="button" onClick={() => (setSelecting(false), setSide(null))}>
              Cancel
            </button>
            <button type="button" class="button" onClick={() => setSelected(new Set(views.filter((v) => !v.deleted).map((v) => v.id)))}>
              Select all loaded
            </button>
            <button type="button" class="button primary" disabled={selected.size === 0} onClick={() => setSide("export")}>
              Select {selected.size} messages
            </button>
          </div>
        ) : (
        <Composer
          disabled={room.encrypted && !ws.e2e.unlocked ? (ws.e2e.status === "setup_needed" ? "This room is encrypted: save your encryption password first (see the banner above)." : "This room is encrypted: enter your E2EE password (see the banner above) to read and send messages.") : null}
          label={offRecord ? `Off-the-record message to ${title}` : `Message ${room.kind === "direct" ? "@" : "#"}${title}`}
          onSend={(text) => (offRecord ? ws.otr.send(room.id, text) : ws.send(room.id, text))}
          onFile={(file, progress) => ws.sendFile(room.id, file, progress)}
          fileRefusal={offRecord ? ws.otr.fileRefusal(room.id) : null}
        />
        )}
      </main>
      {side === "export" && (
        <ExportPanel
          ws={ws}
          roomId={room.id}
          selected={views.filter((v) => selected.has(v.id))}
          onClose={() => {
            setSide(null);
            setSelecting(false);
          }}
        />
      )}
      {side === "otr" && <OtrPanel ws={ws} otr={ws.otr} roomId={room.id} onClose={() => setSide(null)} />}
      {side === "members" && (
        <Panel title="Members" onClose={() => setSide(null)}>
          <MembersPanel ws={ws} room={room} owner={owner} />
        </Panel>
      )}
    </div>
  );
}
