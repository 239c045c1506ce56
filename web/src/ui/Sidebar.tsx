// The room list: channels, teams and discussions, then direct messages; unread counts,
// a key icon on encrypted rooms, and the menus to create rooms and reach the account.

import type { Room } from "../api/types";
import type { Router } from "../state/router";
import type { Workspace } from "../state/workspace";
import type { Creating } from "./Shell";
import { Icon, type IconName, Menu } from "./kit";

export function Sidebar(props: { ws: Workspace; router: Router; activeRoom: string | null; onCreate: (c: Creating) => void; onSearch: () => void; onLoggedOut: () => void; onNavigate: () => void }) {
  const { ws, router } = props;
  const rooms = [...ws.rooms.values()];
  const byTitle = (a: Room, b: Room) => ws.roomTitle(a).localeCompare(ws.roomTitle(b));
  const groups: [string, Room[]][] = [
    ["Channels", rooms.filter((r) => r.kind === "channel" || r.kind === "team").sort(byTitle)],
    ["Discussions", rooms.filter((r) => r.kind === "discussion").sort(byTitle)],
    ["Direct messages", rooms.filter((r) => r.kind === "direct").sort(byTitle)],
  ];
  const go = (page: "admin" | "account") => {
    props.onNavigate();
    router.go({ page });
  };
  return (
    <nav class="sidebar" aria-label="Rooms">
      <div class="sidebar-head">
        <a
          class="workspace-name"
          href="/"
          onClick={(e) => {
            e.preventDefault();
            props.onNavigate();
            router.go({ page: "home" });
          }}
        >
          <span class="brand-mark" aria-hidden="true">
            S
          </span>
          Sotto
        </a>
        <button type="button" class="icon-button" aria-label="Search messages" onClick={props.onSearch}>
          <Icon name="search" />
        </button>
        <Menu
          label="Create new"
          icon="plus"
          items={[
            { label: "Channel", onSelect: () => props.onCreate("channel") },
            { label: "Team", onSelect: () => props.onCreate("team") },
            { label: "Discussion", onSelect: () => props.onCreate("discussion") },
            { label: "Direct message", onSelect: () => props.onCreate("direct") },
            { label: "Browse channels", onSelect: () => props.onCreate("directory") },
          ]}
        />
      </div>
      <div class="room-groups">
        {groups.map(([title, list]) =>
          list.length === 0 ? null : (
            <section key={title} aria-label={title}>
              <h2 class="group-title">{title}</h2>
              <ul class="room-list">
                {list.map((r) => (
                  <li key={r.id}>
                    <a
                      href={`/rooms/${encodeURIComponent(r.id)}`}
                      class={`room-link${r.id === props.activeRoom ? " active" : ""}${r.unread ? " unread" : ""}`}
                      aria-current={r.id === props.activeRoom ? "page" : undefined}
                      onClick={(e) => {
                        e.preventDefault();
                        props.onNavigate();
                        router.go({ page: "room", roomId: r.id });
                      }}
                    >
                      <RoomIcon ws={ws} room={r} />
                      <span class="room-name">{ws.roomTitle(r)}</span>
                      {r.encrypted && <Icon name="key" class="room-key" title="Encrypted" />}
                      {r.unread ? (
                        <span class="badge" aria-label={`${r.unread >= 100 ? "100+" : r.unread} unread`}>
                          {r.unread >= 100 ? "100+" : r.unread}
                        </span>
                      ) : null}
                    </a>
                  </li>
                ))}
              </ul>
            </section>
          ),
        )}
        {rooms.length === 0 && <p class="muted empty-rooms">No rooms yet. Create a channel or start a direct message.</p>}
      </div>
      <div class="sidebar-foot">
        <span class="avatar" aria-hidden="true">
          {initial(ws.me.display_name || ws.me.username)}
        </span>
        <span class="me-name">{ws.me.display_name || ws.me.username}</span>
        <Menu
          label="Account menu"
          icon="settings"
          items={[
            { label: "My account", onSelect: () => go("account") },
            ...(ws.me.admin ? [{ label: "Administration", onSelect: () => go("admin") }] : []),
            {
              label: "Log out",
              onSelect: () => void ws.logout().finally(props.onLoggedOut),
            },
          ]}
        />
      </div>
    </nav>
  );
}

function RoomIcon(props: { ws: Workspace; room: Room }) {
  const r = props.room;
  let name: IconName = "hash";
  if (r.kind === "direct") {
    const others = (props.ws.members.get(r.id) ?? []).filter((m) => m.user_id !== props.ws.me.id);
    if (others.length === 1) {
      const online = props.ws.online.has(others[0]!.user_id);
      return <span class={online ? "presence online" : "presence"} aria-label={online ? "online" : "offline"} role="img" />;
    }
    name = "people";
  } else if (r.kind === "team") name = "team";
  else if (r.kind === "discussion") name = "discussion";
  else if (r.private) name = "lock";
  return <Icon name={name} class="room-icon" />;
}

export function initial(name: string): string {
  return (name.trim()[0] ?? "?").toUpperCase();
}
