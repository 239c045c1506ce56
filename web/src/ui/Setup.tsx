// The first-start page the server's printed link opens: the one-time token is in the
// link's fragment (never sent in a URL to the server) and creates the first admin.

import { useEffect, useState } from "preact/hooks";
import { ApiError, Http } from "../api/http";
import { Workspace } from "../state/workspace";
import { useAction } from "./hooks";
import { ErrorText, TextInput } from "./kit";
import { AuthFrame } from "./Login";

export function Setup(props: { onDone: (ws: Workspace) => Promise<void> }) {
  const [token] = useState(() => decodeURIComponent(location.hash.slice(1)));
  const [complete, setComplete] = useState<boolean | null>(null);
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const action = useAction(async () => {
    if (password !== confirm) throw new Error("The two passwords differ.");
    try {
      const ws = await Workspace.setup(token, username.trim(), password, displayName.trim());
      history.replaceState(null, "", "/");
      await props.onDone(ws);
    } catch (e) {
      if (e instanceof ApiError && e.code === "invalid_setup_token") throw new Error("This setup link is not valid any more. Restart the server to print a new one.");
      throw e;
    }
  });

  useEffect(() => {
    // The token stays in memory only: take it out of the address bar and history.
    history.replaceState(null, "", "/setup");
    new Http()
      .json<{ complete: boolean }>("GET", "/api/v1/setup")
      .then((s) => setComplete(s.complete))
      .catch(() => setComplete(false));
  }, []);

  if (complete) {
    return (
      <AuthFrame title="Sotto is already set up">
        <p>An administrator exists. Sign in instead.</p>
        <a class="button primary" href="/login">
          Go to sign in
        </a>
      </AuthFrame>
    );
  }
  if (!token) {
    return (
      <AuthFrame title="Set up Sotto">
        <p>Open the setup link the server printed when it started; it carries a one-time code.</p>
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title="Set up Sotto" subtitle="Create the first administrator of this workspace.">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void action.run();
        }}
      >
        <TextInput label="Username" value={username} onInput={setUsername} autoFocus autoComplete="username" required />
        <TextInput label="Display name" value={displayName} onInput={setDisplayName} autoComplete="name" />
        <TextInput label="Password" type="password" value={password} onInput={setPassword} autoComplete="new-password" required hint="At least 8 characters." />
        <TextInput label="Confirm password" type="password" value={confirm} onInput={setConfirm} autoComplete="new-password" required />
        <ErrorText error={action.error} />
        <button class="button primary wide" type="submit" disabled={action.busy}>
          {action.busy ? "Creating…" : "Create administrator"}
        </button>
      </form>
    </AuthFrame>
  );
}
