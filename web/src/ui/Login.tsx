// Sign in with username and password.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { ApiError } from "../api/http";
import { Workspace } from "../state/workspace";
import { useAction } from "./hooks";
import { ErrorText, TextInput } from "./kit";

export function Login(props: { onDone: (ws: Workspace) => Promise<void> }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction(async () => {
    try {
      await props.onDone(await Workspace.login(username.trim(), password));
    } catch (e) {
      if (e instanceof ApiError && e.code === "invalid_credentials") throw new Error("Wrong username or password.");
      throw e;
    }
  });
  return (
    <AuthFrame title="Sign in to Sotto">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void action.run();
        }}
      >
        <TextInput label="Username" value={username} onInput={setUsername} autoFocus autoComplete="username" required />
        <TextInput label="Password" type="password" value={password} onInput={setPassword} autoComplete="current-password" required />
        <ErrorText error={action.error} />
        <button class="button primary wide" type="submit" disabled={action.busy}>
          {action.busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </AuthFrame>
  );
}

export function AuthFrame(props: { title: string; subtitle?: string; children: ComponentChildren }) {
  return (
    <main class="auth">
      <div class="auth-card">
        <div class="brand" aria-hidden="true">
          <span class="brand-mark">S</span> Sotto
        </div>
        <h1>{props.title}</h1>
        {props.subtitle && <p class="muted">{props.subtitle}</p>}
        {props.children}
      </div>
    </main>
  );
}
