// The root component: restores this tab's session, then shows the setup page, the
// login page or the workspace.

import { useEffect, useState } from "preact/hooks";
import { Router } from "../state/router";
import { Workspace, savedToken } from "../state/workspace";
import { useEmitter } from "./hooks";
import { Login } from "./Login";
import { Setup } from "./Setup";
import { Shell } from "./Shell";

const router = new Router();

export function App() {
  useEmitter(router);
  const [ws, setWs] = useState<Workspace | null>(null);
  const [booting, setBooting] = useState(savedToken() !== null);
  const [bootError, setBootError] = useState<string | null>(null);

  useEffect(() => {
    if (!booting) return;
    Workspace.resume()
      .then((w) => (w ? begin(w) : null))
      .catch((e: unknown) => setBootError(e instanceof Error ? e.message : String(e)))
      .finally(() => setBooting(false));
  }, []);

  const begin = async (w: Workspace) => {
    try {
      await w.start();
    } catch (e) {
      w.stop();
      // Signed in, but the workspace would not load: say so in words, not the raw error.
      throw new Error(`You are signed in, but your workspace could not be loaded (${e instanceof Error ? e.message : String(e)}). Reload the page to try again.`);
    }
    setWs(w);
    const r = router.route;
    if (r.page === "login" || r.page === "setup") router.go({ page: "home" }, true);
  };

  useEffect(() => () => ws?.stop(), [ws]);

  if (booting) return <Splash text="Loading…" />;
  if (bootError && !ws) return <Splash text={bootError} />;
  if (router.route.page === "setup" && !ws) return <Setup onDone={begin} />;
  if (!ws) return <Login onDone={begin} />;
  return (
    <Shell
      ws={ws}
      router={router}
      onLoggedOut={() => {
        setWs(null);
        router.go({ page: "login" }, true);
      }}
    />
  );
}

function Splash(props: { text: string }) {
  return (
    <main class="splash">
      <p role="status">{props.text}</p>
    </main>
  );
}
