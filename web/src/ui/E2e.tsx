// The encryption screens of the user guide: the "Save your encryption password" and
// "Enter E2EE password" banners with their modals, the key-change warning, safety
// numbers, and the account's encryption settings.

import { useEffect, useState } from "preact/hooks";
import type { E2e } from "../state/e2e";
import type { Workspace } from "../state/workspace";
import { useAction } from "./hooks";
import { Dialog, ErrorText, Icon, TextInput, DialogActions } from "./kit";

type Open = "save" | "unlock" | { verify: string } | null;

/** The banners under the header, and the modals they open. */
export function E2eBanners(props: { ws: Workspace }) {
  const { ws } = props;
  const e2e = ws.e2e;
  const [open, setOpen] = useState<Open>(null);
  const needsSave = e2e.status === "setup_needed" || e2e.newPassword !== null;
  const needsUnlock = e2e.status === "locked" && !e2e.deferred;
  const changes = [...e2e.keyChanges];
  return (
    <>
      {needsSave && !e2e.deferred && (
        <div class="banner info" role="region" aria-label="Encryption">
          <Icon name="key" />
          <button type="button" class="banner-button grow" onClick={() => setOpen("save")}>
            Save your encryption password
          </button>
          <button type="button" class="button small" onClick={() => ((e2e.deferred = true), ws.changed())}>
            Later
          </button>
        </div>
      )}
      {needsUnlock && (
        <div class="banner info" role="region" aria-label="Encryption">
          <Icon name="key" />
          <button type="button" class="banner-button grow" onClick={() => setOpen("unlock")}>
            Enter E2EE password
          </button>
          <button type="button" class="button small" onClick={() => ((e2e.deferred = true), ws.changed())}>
            Later
          </button>
        </div>
      )}
      {changes.map((u) => (
        <div key={u} class="banner warn" role="alert">
          <Icon name="warning" />
          <span class="grow">
            <strong>{ws.displayName(u)}'s encryption key changed.</strong> Messages and room keys for them are held back until you check the new key.
          </span>
          <button type="button" class="button small" onClick={() => setOpen({ verify: u })}>
            Review key change
          </button>
        </div>
      ))}
      {[...e2e.rolledBack].map((roomId) => {
        const room = ws.rooms.get(roomId);
        return (
          <div key={roomId} class="banner warn" role="alert">
            <Icon name="warning" />
            <span class="grow">
              <strong>The server showed an older state of {room ? ws.roomTitle(room) : "a room"}.</strong> Changes you saw before, such as someone's removal, were left out. Sotto keeps the newer state, and room keys follow it.
            </span>
          </div>
        );
      })}
      {open === "save" && <SavePasswordDialog e2e={e2e} onClose={() => setOpen(null)} />}
      {open === "unlock" && <UnlockDialog e2e={e2e} onClose={() => setOpen(null)} />}
      {open && typeof open === "object" && <VerifyDialog ws={ws} userId={open.verify} onClose={() => setOpen(null)} />}
    </>
  );
}

function SavePasswordDialog(props: { e2e: E2e; onClose: () => void }) {
  const [password, setPassword] = useState<string | null>(props.e2e.newPassword);
  const [copied, setCopied] = useState(false);
  const make = useAction(async () => setPassword(await props.e2e.setup()));
  useEffect(() => {
    if (!password) void make.run();
  }, []);
  const copy = async () => {
    if (!password) return;
    await navigator.clipboard.writeText(password).catch(() => undefined);
    setCopied(true);
  };
  return (
    <Dialog
      title="Save your encryption password"
      onClose={props.onClose}
      footer={
        <>
          <button type="button" class="button" disabled={!password} onClick={() => void copy()}>
            {copied ? "Copied" : "Copy"}
          </button>
          <button
            type="button"
            class="button primary"
            disabled={!password}
            onClick={() => {
              props.e2e.confirmSaved();
              props.onClose();
            }}
          >
            I saved my password
          </button>
        </>
      }
    >
      <p>This password unlocks your encrypted messages on every device. It is shown only this once and is never sent to the server: store it somewhere safe, such as a password manager.</p>
      {password ? (
        <p class="secret" aria-label="Your encryption password">
          {password}
        </p>
      ) : (
        <p role="status">{make.busy ? "Creating your keys…" : ""}</p>
      )}
      <ErrorText error={make.error} />
    </Dialog>
  );
}

function UnlockDialog(props: { e2e: E2e; onClose: () => void }) {
  const [password, setPassword] = useState("");
  const unlock = useAction(async () => {
    await props.e2e.unlock(password);
    props.onClose();
  });
  return (
    <Dialog
      title="Enter E2EE password"
      onClose={props.onClose}
      footer={
        <button type="submit" form="unlock-form" class="button primary" disabled={!password || unlock.busy}>
          {unlock.busy ? "Unlocking…" : "Enable encryption"}
        </button>
      }
    >
      <form
        id="unlock-form"
        onSubmit={(e) => {
          e.preventDefault();
          void unlock.run();
        }}
      >
        <p>Enter the encryption password you saved when you set up encryption, to read and send encrypted messages in this browser session.</p>
        <TextInput label="Encryption password" type="password" value={password} onInput={setPassword} autoFocus autoComplete="off" />
        <ErrorText error={unlock.error} />
      </form>
    </Dialog>
  );
}

/** The safety number with a contact; "Mark as verified", or accepting a changed key. */
export function VerifyDialog(props: { ws: Workspace; userId: string; onClose: () => void }) {
  const { ws, userId } = props;
  const [v, setV] = useState<Awaited<ReturnType<E2e["verification"]>> | null>(null);
  const load = useAction(async () => setV(await ws.e2e.verification(userId)));
  useEffect(() => void load.run(), [userId]);
  const name = ws.displayName(userId);
  return (
    <Dialog
      title={`Verify ${name}`}
      onClose={props.onClose}
      footer={
        v && (
          <>
            {v.changed ? (
              <button type="button" class="button primary" onClick={() => (ws.e2e.acceptKeyChange(userId), void load.run())}>
                Accept new key
              </button>
            ) : !v.verified ? (
              <button type="button" class="button primary" onClick={() => (ws.e2e.markVerified(userId), void load.run())}>
                Mark as verified
              </button>
            ) : null}
            <button type="button" class="button" onClick={props.onClose}>
              Close
            </button>
          </>
        )
      }
    >
      {v?.changed && (
        <p class="callout warn" role="alert">
          <Icon name="warning" /> {name}'s key is not the one you knew. This happens after they reset their encryption, or if someone is intercepting. Compare the new safety number with {name} in person or by a call before accepting it.
        </p>
      )}
      <p>Compare this number with the one {name} sees. If they match, your conversation is end-to-end encrypted between the two of you.</p>
      {v && (
        <p class="safety-number" aria-label="Safety number">
          {v.safetyNumber}
        </p>
      )}
      {v?.verified && (
        <p class="verified-note">
          <Icon name="shield" /> Verified
        </p>
      )}
      <ErrorText error={load.error} />
    </Dialog>
  );
}

/** The account page's encryption section: change the password, reset the key (E10). */
export function E2eAccount(props: { ws: Workspace }) {
  const e2e = props.ws.e2e;
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const [resetting, setResetting] = useState(false);
  const change = useAction(async () => {
    if (next.length < 8) throw new Error("Choose an encryption password of at least 8 characters.");
    if (next !== confirm) throw new Error("The two passwords differ.");
    await e2e.changePassword(next);
    setNext("");
    setConfirm("");
    setDone("Your encryption password was changed. Use the new one on every device from now on.");
  });
  if (e2e.status === "disabled") return <p class="muted">End-to-end encryption is not enabled on this workspace.</p>;
  return (
    <div class="e2e-account">
      <h3>Change encryption password</h3>
      {e2e.unlocked ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setDone(null);
            void change.run();
          }}
        >
          <TextInput label="New encryption password" type="password" value={next} onInput={setNext} autoComplete="new-password" />
          <TextInput label="Confirm new encryption password" type="password" value={confirm} onInput={setConfirm} autoComplete="new-password" />
          <ErrorText error={change.error} />
          {done && <p role="status">{done}</p>}
          <button type="submit" class="button primary" disabled={change.busy}>
            Change encryption password
          </button>
        </form>
      ) : (
        <p class="muted">Enter your E2EE password in this session first: only keys that are loaded can be given a new password.</p>
      )}
      <h3>Reset E2E key</h3>
      <p class="muted">If you lost your encryption password, reset your key and set up a new one.</p>
      <button type="button" class="button danger" onClick={() => setResetting(true)}>
        Reset E2E key
      </button>
      {resetting && <ResetDialog e2e={e2e} onClose={() => setResetting(false)} />}
    </div>
  );
}

function ResetDialog(props: { e2e: E2e; onClose: () => void }) {
  const [password, setPassword] = useState("");
  const reset = useAction(async () => {
    await props.e2e.reset(password);
    props.onClose();
  });
  return (
    <Dialog
      title="Reset E2E key"
      onClose={props.onClose}
      footer={
        <DialogActions onCancel={props.onClose} label="Reset my key" busy={reset.busy} disabled={!password} danger form="reset-form" />
      }
    >
      <form
        id="reset-form"
        onSubmit={(e) => {
          e.preventDefault();
          void reset.run();
        }}
      >
        <ul class="consequences">
          <li>Your current keys are deleted; messages you could read only with them stay unreadable until other members hand you the room keys again.</li>
          <li>You will set up new keys with a new encryption password.</li>
          <li>Your contacts will see a warning that your key changed, until they accept the new one.</li>
        </ul>
        <TextInput label="Login password" type="password" value={password} onInput={setPassword} autoComplete="current-password" hint="Your login password, not the encryption password." />
        <ErrorText error={reset.error} />
      </form>
    </Dialog>
  );
}
