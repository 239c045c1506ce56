// The signed-in layout: sidebar, banners, and the page the route names.

import { useState } from "preact/hooks";
import type { Room } from "../api/types";
import type { Router } from "../state/router";
import type { Workspace } from "../state/workspace";
import { AccountPage } from "./Account";
import { AdminPage } from "./Admin";
import { CreateDiscussionDialog, CreateRoomDialog, DirectMessageDialog } from "./CreateRoom";
import { DirectoryDialog } from "./Directory";
import { E2eAccount, E2eBanners } from "./E2e";
import { useEmitter } from "./hooks";
import { Icon } from "./kit";
import { RoomView } from "./RoomView";
import { SearchPanel } from "./SearchPanel";
import { Sidebar } from "./Sidebar";

export type Creating = "channel" | "team" | "discussion" | "direct" | "directory" | null;

export function Shell(props: { ws: Workspace; router: Router; onLoggedOut: () => void }) {
  const { ws, router } = props;
  useEmitter(ws);
  const [creating, setCreating] = useState<Creating>(null);
  const [searching, setSearching] = useState(false);
  const [navOpen, setNavOpen] = useState(false);
  const route = router.route;
  const openRoom = (id: string) => {
    setNavOpen(false);
    router.go({ page: "room", roomId: id });
  };
  const created = (room: Room) => {
    setCreating(null);
    openRoom(room.id);
  };
  const roomId = route.page === "room" ? route.roomId : null;
  ws.activeRoom = roomId;

  return (
    <div class={navOpen ? "shell nav-open" : "shell"}>
      <Sidebar ws={ws} router={router} activeRoom={roomId} onCreate={setCreating} onSearch={() => setSearching(true)} onLoggedOut={props.onLoggedOut} onNavigate={() => setNavOpen(false)} />
      {/* On a phone, the rest of the page dims behind the open room list; a tap closes it. */}
      {navOpen && <div class="nav-scrim" aria-hidden="true" onClick={() => setNavOpen(false)} />}
      <div class="main">
        <button type="button" class="icon-button nav-toggle" aria-label="Show rooms" aria-expanded={navOpen} onClick={() => setNavOpen(!navOpen)}>
          <Icon name="menu" />
        </button>
        {ws.socket === "closed" && (
          <div class="banner warn" role="status">
            Reconnecting to the server…
          </div>
        )}
        <E2eBanners ws={ws} />
        <div class="content">
          {route.page === "room" && ws.rooms.get(route.roomId) ? (
            <RoomView key={route.roomId} ws={ws} room={ws.rooms.get(route.roomId)!} onSearch={() => setSearching(true)} onLeft={() => router.go({ page: "home" })} onCreateDiscussion={() => setCreating("discussion")} />
          ) : route.page === "admin" && ws.me.admin ? (
            <AdminPage ws={ws} />
          ) : route.page === "account" ? (
            <AccountPage ws={ws} e2eSection={<E2eAccount ws={ws} />} />
          ) : (
            <Home ws={ws} missing={route.page === "room"} onCreate={setCreating} />
          )}
          {searching && <SearchPanel ws={ws} roomId={roomId ?? undefined} onClose={() => setSearching(false)} onOpen={(id) => (setSearching(false), openRoom(id))} />}
        </div>
      </div>
      {(creating === "channel" || creating === "team") && <CreateRoomDialog ws={ws} kind={creating} onClose={() => setCreating(null)} onCreated={created} />}
      {creating === "discussion" && <CreateDiscussionDialog ws={ws} parentId={roomId ?? undefined} onClose={() => setCreating(null)} onCreated={created} />}
      {creating === "direct" && <DirectMessageDialog ws={ws} onClose={() => setCreating(null)} onCreated={created} />}
      {creating === "directory" && <DirectoryDialog ws={ws} onClose={() => setCreating(null)} onJoined={(id) => (setCreating(null), openRoom(id))} />}
    </div>
  );
}

function Home(props: { ws: Workspace; missing: boolean; onCreate: (c: Creating) => void }) {
  return (
    <main class="home" aria-labelledby="home-title">
      <h1 id="home-title">{props.missing ? "This room is not available" : `Welcome, ${props.ws.me.display_name || props.ws.me.username}`}</h1>
      <p class="muted">{props.missing ? "It does not exist, or you are not a member." : "Pick a room on the left, or start something new."}</p>
      <div class="home-actions">
        <button type="button" class="button" onClick={() => props.onCreate("channel")}>
          <Icon name="hash" /> Create channel
        </button>
        <button type="button" class="button" onClick={() => props.onCreate("direct")}>
          <Icon name="person" /> Direct message
        </button>
        <button type="button" class="button" onClick={() => props.onCreate("directory")}>
          <Icon name="search" /> Browse channels
        </button>
      </div>
    </main>
  );
}
