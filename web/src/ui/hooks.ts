// Re-render a component when a state object (an Emitter) changes.

import { useEffect, useState } from "preact/hooks";
import type { Emitter } from "../state/emitter";

export function useEmitter(e: Emitter | null): void {
  const [, setVersion] = useState(0);
  useEffect(() => {
    if (!e) return;
    return e.subscribe(() => setVersion(e.version));
  }, [e]);
}

/** Runs an async action, keeping its pending state and its error message for display. */
export function useAction<A extends unknown[]>(fn: (...args: A) => Promise<unknown>): { run: (...args: A) => Promise<boolean>; busy: boolean; error: string | null; setError: (e: string | null) => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (...args: A) => {
    setBusy(true);
    setError(null);
    try {
      await fn(...args);
      return true;
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error, setError };
}
