// The one change signal the UI listens to: state objects call `changed()`, and the
// components that use them re-render (see ui/hooks.ts).

type Listener = () => void;

export class Emitter {
  private listeners = new Set<Listener>();
  private scheduled = false;
  version = 0;

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Coalesces the changes of one task into one notification. */
  changed(): void {
    this.version++;
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    });
  }
}
