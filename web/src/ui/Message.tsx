// One message: sender with the key icons (encrypted, verified, off the record), time,
// text with mentions, a file with download and image preview, edit and delete.

import { useEffect, useState } from "preact/hooks";
import type { MessageView, Workspace } from "../state/workspace";
import { humanSize } from "../state/format";
import { initial } from "./Sidebar";
import { Icon, Menu, formatTime } from "./kit";

export interface MessageActions {
  edit?: (id: string, text: string) => Promise<void>;
  remove?: (id: string) => Promise<void>;
  download: (view: MessageView) => Promise<Blob>;
  /** The reader owns the room, so may delete others' messages. */
  owner: boolean;
  select?: { selected: boolean; toggle: () => void };
}

export function MessageRow(props: { ws: Workspace; view: MessageView; actions: MessageActions }) {
  const { ws, view, actions } = props;
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(view.text ?? "");
  const name = ws.displayName(view.senderId);
  const mine = view.senderId === ws.me.id;
  const canEdit = mine && !view.deleted && !view.otr && view.text !== null && !view.file && actions.edit;
  const canDelete = !view.deleted && !view.otr && actions.remove && (mine || actions.owner);

  return (
    <article class={`message${view.mentionsMe ? " mentioned" : ""}${view.otr ? " otr" : ""}`} aria-label={`${name}, ${formatTime(view.time)}${view.mentionsMe ? ", mentions you" : ""}`}>
      {actions.select && <input type="checkbox" class="select-box" aria-label={`Select message from ${name}`} checked={actions.select.selected} onChange={actions.select.toggle} />}
      <span class="avatar" aria-hidden="true">
        {initial(name)}
      </span>
      <div class="message-main">
        <header class="message-head">
          <span class="sender">{name}</span>
          {view.otr ? (
            <Icon name="key-bold" class="otr-key" title="Off the record" />
          ) : view.encrypted ? (
            <Icon name="key" class={view.verified ? "msg-key verified" : "msg-key"} title={view.verified ? "Encrypted, verified sender" : "Encrypted"} />
          ) : null}
          <time class="time" dateTime={new Date(view.time).toISOString()}>
            {formatTime(view.time)}
          </time>
          {view.edited && !view.deleted && <span class="edited">(edited)</span>}
          {(canEdit || canDelete) && !editing && (
            <span class="message-menu">
              <Menu
                label={`Message actions for ${name}`}
                icon="kebab"
                items={[
                  ...(canEdit ? [{ label: "Edit", onSelect: () => (setDraft(view.text ?? ""), setEditing(true)) }] : []),
                  ...(canDelete ? [{ label: "Delete", danger: true, onSelect: () => void actions.remove?.(view.id) }] : []),
                ]}
              />
            </span>
          )}
        </header>
        {view.deleted ? (
          <p class="muted deleted">Message deleted</p>
        ) : view.problem ? (
          <p class="problem" role="note">
            <Icon name="key" /> {view.problem}
          </p>
        ) : editing ? (
          <form
            class="edit-form"
            onSubmit={(e) => {
              e.preventDefault();
              void actions.edit?.(view.id, draft).then(() => setEditing(false));
            }}
          >
            <textarea aria-label="Edit message" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
            <div class="edit-actions">
              <button type="button" class="button" onClick={() => setEditing(false)}>
                Cancel
              </button>
              <button type="submit" class="button primary">
                Save
              </button>
            </div>
          </form>
        ) : view.file ? (
          <FileCard ws={ws} view={view} download={actions.download} />
        ) : (
          <p class="text">{withMentions(view.text ?? "", ws)}</p>
        )}
      </div>
    </article>
  );
}

/** Highlights `@username` of known users; the rest stays plain text. */
function withMentions(text: string, ws: Workspace) {
  const known = new Set([...ws.users.values()].map((u) => u.username.toLowerCase()));
  return text.split(/(@[A-Za-z0-9._-]+)/).map((part, i) =>
    i % 2 === 1 && known.has(part.slice(1).toLowerCase()) ? (
      <span key={i} class={part.slice(1).toLowerCase() === ws.me.username.toLowerCase() ? "mention me" : "mention"}>
        {part}
      </span>
    ) : (
      part
    ),
  );
}

function FileCard(props: { ws: Workspace; view: MessageView; download: (v: MessageView) => Promise<Blob> }) {
  const f = props.view.file!;
  const [preview, setPreview] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const isImage = (f.type ?? guessType(f.name)).startsWith("image/") && (f.size ?? 0) <= 8 * 1024 * 1024;
  useEffect(() => {
    if (!isImage) return;
    let url: string | null = null;
    props
      .download(props.view)
      .then((b) => {
        url = URL.createObjectURL(new Blob([b], { type: f.type ?? guessType(f.name) }));
        setPreview(url);
      })
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)));
    return () => {
      if (url) URL.revokeObjectURL(url);
    };
  }, [props.view.id]);
  const save = async () => {
    setError(null);
    try {
      const blob = await props.download(props.view);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = f.name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <div class="file-card">
      {preview && <img class="preview" src={preview} alt={f.name} />}
      <div class="file-row">
        <Icon name="paperclip" />
        <span class="file-name">{f.name}</span>
        {f.size !== null && <span class="muted">{humanSize(f.size)}</span>}
        <button type="button" class="button small" aria-label={`Download ${f.name}`} onClick={() => void save()}>
          <Icon name="download" /> Download
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function guessType(name: string): string {
  const ext = name.toLowerCase().split(".").pop() ?? "";
  return { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp" }[ext] ?? "application/octet-stream";
}
