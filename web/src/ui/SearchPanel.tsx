// Message search (C9, E12): plaintext messages of the user's rooms, newest first, with
// the matched words highlighted. Encrypted messages are never found: the server cannot
// read them.

import type { ComponentChildren } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";
import type { Message } from "../api/types";
import { parseFileText } from "../state/format";
import type { Workspace } from "../state/workspace";
import { useEmitter } from "./hooks";
import { ErrorText, Icon, Panel, Toggle, formatTime } from "./kit";
import "./pages.css";

/** A word as the server's search sees one: letters, digits and their marks. */
const WORD = /[\p{L}\p{N}\p{M}]+/gu;

function queryWords(q: string): Set<string> {
  return new Set(Array.from(q.matchAll(WORD), (m) => m[0].toLowerCase()));
}

/** The text as plain strings with the whole words of the query wrapped in <mark>. */
export function highlight(text: string, words: Set<string>): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let last = 0;
  if (words.size > 0) {
    for (const m of text.matchAll(WORD)) {
      const at = m.index ?? 0;
      if (!words.has(m[0].toLowerCase())) continue;
      if (at > last) out.push(text.slice(last, at));
      out.push(<mark key={at}>{m[0]}</mark>);
      last = at + m[0].length;
    }
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

interface Results {
  query: string;
  scope: string | undefined;
  messages: Message[];
  next: string | null;
}

const DEBOUNCE_MS = 350;

export function SearchPanel(props: { ws: Workspace; roomId?: string; onClose: () => void; onOpen: (roomId: string, seq: number) => void }) {
  const { ws } = props;
  useEmitter(ws);
  const inputId = useId();
  const [q, setQ] = useState("");
  const [onlyRoom, setOnlyRoom] = useState(props.roomId !== undefined);
  const [results, setResults] = useState<Results | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  /** Numbers each request, so that an older answer never replaces a newer one. */
  const ticket = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const room = props.roomId ? ws.rooms.get(props.roomId) : undefined;
  const scope = onlyRoom ? props.roomId : undefined;

  const run = async (query: string, inRoom: string | undefined, more: Results | null) => {
    if (timer.current) clearTimeout(timer.current);
    const text = query.trim();
    const mine = ++ticket.current;
    if (!text) {
      setResults(null);
      setError(null);
      setBusy(false);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const page = await ws.search(text, inRoom, more?.next ?? undefined);
      if (mine !== ticket.current) return;
      setResults({ query: text, scope: inRoom, messages: more ? [...more.messages, ...page.messages] : page.messages, next: page.next_cursor ?? null });
    } catch (e) {
      if (mine !== ticket.current) return;
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      if (mine === ticket.current) setBusy(false);
    }
  };

  // Search as the user types, after a pause; Enter searches at once.
  const onInput = (value: string) => {
    setQ(value);
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => void run(value, scope, null), DEBOUNCE_MS);
  };
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
    ticket.current++;
  }, []);

  // Senders are named from member lists: load those of result rooms not loaded yet.
  useEffect(() => {
    if (!results) return;
    const missing = new Set(results.messages.filter((m) => !ws.users.has(m.sender_id) && ws.rooms.has(m.room_id) && !ws.members.has(m.room_id)).map((m) => m.room_id));
    for (const id of missing) void ws.loadMembers(id).catch(() => undefined);
  }, [results]);

  const words = results ? queryWords(results.query) : new Set<string>();
  const scopeEncrypted = scope !== undefined && room?.encrypted === true;

  return (
    <Panel title="Search messages" onClose={props.onClose}>
      <form
        role="search"
        class="search-form"
        onSubmit={(e) => {
          e.preventDefault();
          void run(q, scope, null);
        }}
      >
        <label for={inputId} class="visually-hidden">
          Search messages
        </label>
        <div class="search-box">
          <Icon name="search" />
          <input id={inputId} type="search" value={q} autoFocus autoComplete="off" maxLength={256} placeholder={scope && room ? `Search in ${ws.roomTitle(room)}` : "Search all your rooms"} onInput={(e) => onInput(e.currentTarget.value)} />
        </div>
      </form>
      {props.roomId !== undefined && (
        <Toggle
          label={room ? `Only in ${ws.roomTitle(room)}` : "Only in this room"}
          checked={onlyRoom}
          onChange={(v) => {
            setOnlyRoom(v);
            void run(q, v ? props.roomId : undefined, null);
          }}
        />
      )}
      <p class="callout search-note">
        <Icon name="key" />
        <span>{scopeEncrypted ? "This room is end-to-end encrypted: its encrypted messages are not searchable." : "Encrypted messages are not searchable: only messages of rooms without end-to-end encryption are found."}</span>
      </p>
      <ErrorText error={error} />
      <p class="status-text" role="status">
        {busy && !results ? "Searching…" : results ? (results.messages.length === 0 ? "" : `${results.messages.length}${results.next ? "+" : ""} ${results.messages.length === 1 && !results.next ? "message" : "messages"} found`) : ""}
      </p>
      {!results ? (
        !busy && !error && (
          <div class="empty-state">
            <Icon name="search" />
            <p>Type words to find the messages that contain all of them.</p>
          </div>
        )
      ) : results.messages.length === 0 ? (
        <div class="empty-state">
          <p>No messages match “{results.query}”.</p>
          <p class="muted-text">Search finds whole words, and only in rooms you are a member of.</p>
        </div>
      ) : (
        <>
          <ol class="search-results">
            {results.messages.map((m) => (
              <li key={`${m.room_id}:${m.id}`}>
                <SearchResult ws={ws} message={m} words={words} onOpen={props.onOpen} />
              </li>
            ))}
          </ol>
          {results.next && (
            <button type="button" class="button load-more" disabled={busy} onClick={() => void run(results.query, results.scope, results)}>
              {busy ? "Loading…" : "Load more"}
            </button>
          )}
        </>
      )}
    </Panel>
  );
}

function SearchResult(props: { ws: Workspace; message: Message; words: Set<string>; onOpen: (roomId: string, seq: number) => void }) {
  const { ws, message: m } = props;
  const room = ws.rooms.get(m.room_id);
  const title = room ? ws.roomTitle(room) : "A room you left";
  const text = m.text ?? "";
  const file = parseFileText(text);
  return (
    <button type="button" class="search-result" onClick={() => props.onOpen(m.room_id, m.seq)}>
      <span class="result-meta">
        <span class="result-room">
          <Icon name={room?.kind === "direct" ? "person" : room?.kind === "team" ? "team" : room?.kind === "discussion" ? "discussion" : "hash"} />
          {title}
        </span>
        <span class="result-sender">{ws.displayName(m.sender_id)}</span>
        <time class="result-time" dateTime={new Date(m.created_at).toISOString()}>
          {formatTime(m.created_at)}
        </time>
      </span>
      <span class="result-text">
        {file ? (
          <>
            <Icon name="paperclip" />
            {highlight(file.label || "File", props.words)}
          </>
        ) : (
          highlight(text, props.words)
        )}
        {m.edited_at !== null && <span class="muted-text"> (edited)</span>}
      </span>
    </button>
  );
}
