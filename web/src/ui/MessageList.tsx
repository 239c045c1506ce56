// The live message list, virtualised: only the messages near the viewport are in the
// DOM (measured heights, estimated for the rest), so a room of thousands of messages
// scrolls smoothly. Scrolling to the top loads older pages; at the bottom it follows
// new messages.

import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef, useState } from "preact/hooks";

const ESTIMATE = 64;
const OVERSCAN = 600;

export interface ListItem {
  key: string;
  render: () => ComponentChildren;
}

export function MessageList(props: { items: ListItem[]; label: string; onTop: () => void; loading: boolean; atStart: boolean; empty: ComponentChildren }) {
  const scroller = useRef<HTMLDivElement>(null);
  const heights = useRef(new Map<string, number>());
  const stick = useRef(true);
  const firstKey = useRef<string | null>(null);
  const [view, setView] = useState({ top: 0, height: 800 });
  const [, setMeasured] = useState(0);

  const offsets: number[] = [];
  let total = 0;
  for (const it of props.items) {
    offsets.push(total);
    total += heights.current.get(it.key) ?? ESTIMATE;
  }
  let from = 0;
  while (from < props.items.length - 1 && offsets[from + 1]! < view.top - OVERSCAN) from++;
  let to = from;
  while (to < props.items.length && offsets[to]! < view.top + view.height + OVERSCAN) to++;

  // Older messages were put in front: keep what the user looks at where it was.
  useLayoutEffect(() => {
    const el = scroller.current;
    const first = props.items[0]?.key ?? null;
    if (el && firstKey.current && first !== firstKey.current) {
      const old = props.items.findIndex((i) => i.key === firstKey.current);
      if (old > 0 && !stick.current) el.scrollTop += offsets[old]!;
    }
    firstKey.current = first;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  });

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    setView({ top: el.scrollTop, height: el.clientHeight });
    if (el.scrollTop < 200 && !props.loading && !props.atStart) props.onTop();
  };

  const measure = (key: string) => (el: HTMLElement | null) => {
    if (!el) return;
    const h = el.offsetHeight;
    if (h && heights.current.get(key) !== h) {
      heights.current.set(key, h);
      setMeasured((n) => n + 1);
    }
  };

  return (
    <div class="messages" ref={scroller} onScroll={onScroll} role="log" aria-label={props.label} aria-live="polite" tabIndex={0}>
      {props.atStart && props.items.length > 0 && <p class="history-start">This is the start of the conversation.</p>}
      {props.loading && (
        <p class="history-loading" role="status">
          Loading messages…
        </p>
      )}
      {props.items.length === 0 && !props.loading ? (
        props.empty
      ) : (
        <ol class="message-items">
          <li class="spacer" aria-hidden="true" style={{ height: `${offsets[from] ?? 0}px` }} />
          {props.items.slice(from, to).map((it) => (
            <li key={it.key} ref={measure(it.key)} class="message-item">
              {it.render()}
            </li>
          ))}
          <li class="spacer" aria-hidden="true" style={{ height: `${Math.max(0, total - (offsets[to] ?? total))}px` }} />
        </ol>
      )}
    </div>
  );
}
