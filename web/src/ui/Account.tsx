// My account (C1, C11, E10): profile, login sessions, personal access tokens, and the
// end-to-end encryption section the encryption state supplies.

import type { ComponentChildren } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";
import type { Session } from "../api/types";
import type { Workspace } from "../state/workspace";
import { useAction, useEmitter } from "./hooks";
import { Dialog, ErrorText, Field, Icon, formatTime, DialogActions } from "./kit";
import "./pages.css";

export function AccountPage(props: { ws: Workspace; e2eSection?: ComponentChildren }) {
  const { ws } = props;
  useEmitter(ws);
  const titleId = useId();
  const profileId = useId();
  const e2eId = useId();
  return (
    <main class="page" aria-labelledby={titleId}>
      <header class="page-head">
        <h1 id={titleId}>My account</h1>
        <p class="page-lead">Your profile, where you are logged in, and access for scripts and bots.</p>
      </header>
      <section class="page-section" aria-labelledby={profileId}>
        <div class="section-head">
          <h2 id={profileId}>Profile</h2>
        </div>
        <dl class="profile-list">
          <div>
            <dt>Username</dt>
            <dd>{ws.me.username}</dd>
          </div>
          <div>
            <dt>Display name</dt>
            <dd>{ws.me.display_name || ws.me.username}</dd>
          </div>
          <div>
            <dt>Role</dt>
            <dd>{ws.me.admin ? "Administrator" : "Member"}</dd>
          </div>
        </dl>
      </section>
      <SessionsSection ws={ws} />
      <TokensSection ws={ws} />
      {props.e2eSection !== undefined && props.e2eSection !== null && props.e2eSection !== false && (
        <section class="page-section" aria-labelledby={e2eId}>
          <div class="section-head">
            <h2 id={e2eId}>End-to-end encryption</h2>
          </div>
          {props.e2eSection}
        </section>
      )}
    </main>
  );
}

function sessionLabel(s: Session): string {
  return s.name?.trim() || (s.kind === "login" ? "Unnamed session" : "Unnamed token");
}

// --- sessions ---

function SessionsSection(props: { ws: Workspace }) {
  const { ws } = props;
  const headId = useId();
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const load = useAction(async () => setSessions(await ws.mySessions()));
  const revoke = useAction(async (s: Session) => {
    await ws.revokeSession(s.id);
    setSessions((list) => (list ?? []).filter((x) => x.id !== s.id));
    setStatus(`Logged out ${sessionLabel(s)}.`);
  });
  const revokeOthers = useAction(async () => {
    const others = (sessions ?? []).filter((s) => !s.current);
    for (const s of others) {
      await ws.revokeSession(s.id);
      setSessions((list) => (list ?? []).filter((x) => x.id !== s.id));
    }
    setStatus(others.length === 1 ? "Ended 1 other session." : `Ended ${others.length} other sessions.`);
  });
  useEffect(() => {
    void load.run();
  }, []);
  const others = (sessions ?? []).filter((s) => !s.current).length;

  return (
    <section class="page-section" aria-labelledby={headId}>
      <div class="section-head">
        <h2 id={headId}>Sessions</h2>
        {others > 0 && (
          <button
            type="button"
            class="button"
            disabled={revokeOthers.busy}
            onClick={() => {
              setStatus(null);
              void revokeOthers.run();
            }}
          >
            End all other sessions
          </button>
        )}
      </div>
      <p class="section-lead">Every browser or device where you logged in with your password. Log out the ones you do not recognise.</p>
      <ErrorText error={load.error ?? revoke.error ?? revokeOthers.error} />
      <p class="status-text" role="status">
        {status}
      </p>
      {sessions === null ? (
        load.busy && <p class="muted-text">Loading sessions…</p>
      ) : sessions.length === 0 ? (
        <p class="empty-state">No sessions.</p>
      ) : (
        <table class="data-table">
          <caption class="visually-hidden">Your sessions</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {sessions.map((s) => (
              <tr key={s.id}>
                <td data-label="Name" class="cell-primary">
                  {sessionLabel(s)}
                  {s.current && <span class="pill ok">This browser</span>}
                </td>
                <td data-label="Created">
                  <time dateTime={new Date(s.created_at).toISOString()}>{formatTime(s.created_at)}</time>
                </td>
                <td data-label="Last used">
                  <time dateTime={new Date(s.last_used_at).toISOString()}>{formatTime(s.last_used_at)}</time>
                </td>
                <td class="cell-actions">
                  {!s.current && (
                    <button
                      type="button"
                      class="button small"
                      aria-label={`Log out ${sessionLabel(s)}`}
                      disabled={revoke.busy}
                      onClick={() => {
                        setStatus(null);
                        void revoke.run(s);
                      }}
                    >
                      Log out
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

// --- personal access tokens ---

function TokensSection(props: { ws: Workspace }) {
  const { ws } = props;
  const headId = useId();
  const [tokens, setTokens] = useState<Session[] | null>(null);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<{ token: string; session: Session } | null>(null);
  const [revoking, setRevoking] = useState<Session | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const load = useAction(async () => setTokens(await ws.myTokens()));
  const create = useAction(async () => {
    const n = name.trim();
    if (!n) throw new Error("Enter a name for the token, for example the script or bot that will use it.");
    const t = await ws.createToken(n);
    setTokens((list) => [t.session, ...(list ?? []).filter((x) => x.id !== t.session.id)]);
    setCreated(t);
    setName("");
  });
  useEffect(() => {
    void load.run();
  }, []);

  return (
    <section class="page-section" aria-labelledby={headId}>
      <div class="section-head">
        <h2 id={headId}>Personal access tokens</h2>
      </div>
      <p class="section-lead">A token lets a script or bot use the API as you, until you revoke it. Treat it like a password.</p>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          setStatus(null);
          void create.run();
        }}
      >
        <Field label="Token name" hint="What will use it, for example “deploy bot”.">
          {(id, describedBy) => <input id={id} type="text" value={name} maxLength={64} autoComplete="off" aria-describedby={describedBy} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <button type="submit" class="button primary" disabled={create.busy}>
          <Icon name="plus" /> {create.busy ? "Creating…" : "Create token"}
        </button>
      </form>
      <ErrorText error={create.error} />
      {created && <NewToken created={created} onDone={() => setCreated(null)} />}
      <ErrorText error={load.error} />
      <p class="status-text" role="status">
        {status}
      </p>
      {tokens === null ? (
        load.busy && <p class="muted-text">Loading tokens…</p>
      ) : tokens.length === 0 ? (
        <p class="empty-state">You have no personal access tokens.</p>
      ) : (
        <table class="data-table">
          <caption class="visually-hidden">Your personal access tokens</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id}>
                <td data-label="Name" class="cell-primary">
                  {sessionLabel(t)}
                </td>
                <td data-label="Created">
                  <time dateTime={new Date(t.created_at).toISOString()}>{formatTime(t.created_at)}</time>
                </td>
                <td data-label="Last used">{t.last_used_at > t.created_at ? <time dateTime={new Date(t.last_used_at).toISOString()}>{formatTime(t.last_used_at)}</time> : <span class="muted-text">Never</span>}</td>
                <td class="cell-actions">
                  <button
                    type="button"
                    class="button small danger"
                    aria-label={`Revoke ${sessionLabel(t)}`}
                    onClick={() => {
                      setStatus(null);
                      setRevoking(t);
                    }}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {revoking && (
        <RevokeTokenDialog
          ws={ws}
          token={revoking}
          onClose={() => setRevoking(null)}
          onDone={() => {
            setTokens((list) => (list ?? []).filter((x) => x.id !== revoking.id));
            if (created?.session.id === revoking.id) setCreated(null);
            setStatus(`Revoked ${sessionLabel(revoking)}.`);
            setRevoking(null);
          }}
        />
      )}
    </section>
  );
}

/** The token just created: shown this once, with Copy. */
function NewToken(props: { created: { token: string; session: Session }; onDone: () => void }) {
  const inputRef = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.created.token);
      setCopied("Copied to the clipboard.");
    } catch {
      inputRef.current?.select();
      setCopied("The browser did not allow copying: the token is selected, copy it with your keyboard.");
    }
  };
  return (
    <div class="token-box" role="region" aria-label="New personal access token">
      <p class="token-warning">
        <Icon name="warning" />
        <span>
          Copy the token for <strong>{sessionLabel(props.created.session)}</strong> now: it won't be shown again.
        </span>
      </p>
      <div class="token-row">
        <Field label="New token">
          {(id) => <input id={id} ref={inputRef} type="text" class="mono" readOnly value={props.created.token} onFocus={(e) => e.currentTarget.select()} />}
        </Field>
        <button type="button" class="button primary" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" class="button" onClick={props.onDone}>
          Done
        </button>
      </div>
      <p class="status-text" role="status">
        {copied}
      </p>
    </div>
  );
}

function RevokeTokenDialog(props: { ws: Workspace; token: Session; onClose: () => void; onDone: () => void }) {
  const run = useAction(async () => {
    await props.ws.revokeToken(props.token.id);
    props.onDone();
  });
  return (
    <Dialog
      title={`Revoke ${sessionLabel(props.token)}?`}
      onClose={props.onClose}
      footer={
        <DialogActions onCancel={props.onClose} label="Revoke token" busyLabel="Revoking…" busy={run.busy} danger onAct={() => void run.run()} />
      }
    >
      <p>Scripts and bots using this token stop working at once. This cannot be undone; you can create a new token later.</p>
      <ErrorText error={run.error} />
    </Dialog>
  );
}
