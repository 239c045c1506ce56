// Small shared controls: dialogs, fields, toggles, menus, icons. Every control has an
// accessible name, and everything works from the keyboard.

import type { ComponentChildren, JSX } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";

export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; footer?: ComponentChildren; wide?: boolean; dismissable?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  const dismissable = props.dismissable ?? true;
  return (
    <dialog
      ref={ref}
      class={props.wide ? "dialog wide" : "dialog"}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        if (dismissable) props.onClose();
      }}
    >
      <header class="dialog-head">
        <h2 id={titleId}>{props.title}</h2>
        {dismissable && (
          <button type="button" class="icon-button" aria-label="Close" onClick={props.onClose}>
            <Icon name="close" />
          </button>
        )}
      </header>
      <div class="dialog-body">{props.children}</div>
      {props.footer && <footer class="dialog-foot">{props.footer}</footer>}
    </dialog>
  );
}

/** A dialog's footer: Cancel, and its one action (a submit of `form`, or `onAct`). */
export function DialogActions(props: { onCancel: () => void; label: string; busyLabel?: string; busy: boolean; danger?: boolean; disabled?: boolean; form?: string; onAct?: () => void }) {
  return (
    <>
      <button type="button" class="button" onClick={props.onCancel}>
        Cancel
      </button>
      <button
        type={props.form ? "submit" : "button"}
        form={props.form}
        class={props.danger ? "button danger" : "button primary"}
        disabled={props.busy || props.disabled}
        onClick={props.onAct}
      >
        {props.busy && props.busyLabel ? props.busyLabel : props.label}
      </button>
    </>
  );
}

/** A side panel (members, search, export, OTR): a labelled complementary region. */
export function Panel(props: { title: string; onClose: () => void; children: ComponentChildren; footer?: ComponentChildren }) {
  const titleId = useId();
  return (
    <aside class="panel" aria-labelledby={titleId}>
      <header class="panel-head">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" class="icon-button" aria-label={`Close ${props.title}`} onClick={props.onClose}>
          <Icon name="close" />
        </button>
      </header>
      <div class="panel-body">{props.children}</div>
      {props.footer && <footer class="panel-foot">{props.footer}</footer>}
    </aside>
  );
}

export function Field(props: { label: string; hint?: string; children: (id: string, describedBy?: string) => ComponentChildren }) {
  const id = useId();
  const hintId = props.hint ? `${id}-hint` : undefined;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.children(id, hintId)}
      {props.hint && (
        <p class="hint" id={hintId}>
          {props.hint}
        </p>
      )}
    </div>
  );
}

export function TextInput(props: { label: string; value: string; onInput: (v: string) => void; type?: string; hint?: string; autoFocus?: boolean; autoComplete?: string; required?: boolean; placeholder?: string }) {
  return (
    <Field label={props.label} hint={props.hint}>
      {(id, describedBy) => (
        <input
          id={id}
          type={props.type ?? "text"}
          value={props.value}
          aria-describedby={describedBy}
          autoFocus={props.autoFocus}
          autoComplete={props.autoComplete}
          required={props.required}
          placeholder={props.placeholder}
          onInput={(e) => props.onInput(e.currentTarget.value)}
        />
      )}
    </Field>
  );
}

/** An on/off switch: a checkbox with the switch role, named by its label, described by its hint. */
export function Toggle(props: { label: string; checked: boolean; onChange: (v: boolean) => void; disabled?: boolean; hint?: string }) {
  const id = useId();
  const hintId = props.hint ? `${id}-hint` : undefined;
  return (
    <div class="toggle-row">
      <div class="toggle-text">
        <label for={id} class="toggle-label">
          {props.label}
        </label>
        {props.hint && (
          <span class="hint" id={hintId}>
            {props.hint}
          </span>
        )}
      </div>
      <input id={id} type="checkbox" role="switch" class="switch" checked={props.checked} disabled={props.disabled} aria-describedby={hintId} onChange={(e) => props.onChange(e.currentTarget.checked)} />
    </div>
  );
}

export function ErrorText(props: { error: string | null }) {
  return props.error ? (
    <p class="error" role="alert">
      {props.error}
    </p>
  ) : null;
}

/** A button that opens a menu of actions; arrow keys move, Escape closes. */
export function Menu(props: { label: string; icon?: IconName; text?: string; items: { label: string; onSelect: () => void; danger?: boolean }[] }) {
  const [open, setOpen] = useState(false);
  const menuRef = useRef<HTMLDivElement>(null);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const menuId = useId();
  useEffect(() => {
    if (!open) return;
    menuRef.current?.querySelector<HTMLElement>("[role=menuitem]")?.focus();
    const away = (e: MouseEvent) => {
      if (!menuRef.current?.contains(e.target as Node) && !buttonRef.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", away);
    return () => document.removeEventListener("mousedown", away);
  }, [open]);
  const onKey = (e: JSX.TargetedKeyboardEvent<HTMLDivElement>) => {
    const items = [...(menuRef.current?.querySelectorAll<HTMLElement>("[role=menuitem]") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLElement);
    if (e.key === "Escape") {
      setOpen(false);
      buttonRef.current?.focus();
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      items[(at + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length]?.focus();
    }
  };
  return (
    <div class="menu-wrap">
      <button ref={buttonRef} type="button" class={props.text ? "button" : "icon-button"} aria-label={props.text ? undefined : props.label} aria-haspopup="menu" aria-expanded={open} aria-controls={menuId} onClick={() => setOpen(!open)}>
        {props.icon && <Icon name={props.icon} />}
        {props.text}
      </button>
      {open && (
        <div ref={menuRef} id={menuId} role="menu" aria-label={props.label} class="menu" onKeyDown={onKey}>
          {props.items.map((it) => (
            <button
              type="button"
              role="menuitem"
              key={it.label}
              class={it.danger ? "danger" : undefined}
              onClick={() => {
                setOpen(false);
                it.onSelect();
              }}
            >
              {it.label}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}

export type IconName = "key" | "key-bold" | "lock" | "hash" | "people" | "person" | "plus" | "search" | "close" | "kebab" | "send" | "paperclip" | "download" | "shield" | "warning" | "check" | "menu" | "team" | "discussion" | "settings" | "logout";

const PATHS: Record<IconName, string> = {
  key: "M14 3a5 5 0 0 0-4.8 6.4L3 15.6V19h3.4v-2h2v-2h2l1.2-1.2A5 5 0 1 0 14 3zm1.5 5a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3z",
  "key-bold": "M14 2a6 6 0 0 0-5.9 7.1L2 15.2V20h4.5v-2.2h2.2v-2.2h2.2l1.3-1.3A6 6 0 1 0 14 2zm1.6 6.4a2 2 0 1 1 0-4 2 2 0 0 1 0 4z",
  lock: "M7 10V7a5 5 0 0 1 10 0v3h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h1zm2 0h6V7a3 3 0 0 0-6 0v3z",
  hash: "M9.5 3 8.8 8H5v2h3.5l-.6 4H4v2h3.6L7 21h2l.7-5h4l-.7 5h2l.7-5H19v-2h-3l.6-4H20V8h-3.1l.6-5h-2l-.7 5h-4l.7-5h-2zm.8 7h4l-.6 4h-4l.6-4z",
  people: "M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm7 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM1 20c0-3.3 3.6-6 8-6s8 2.7 8 6v1H1v-1zm17 1v-1c0-1.8-.8-3.4-2-4.6 3.4.3 7 2 7 4.6v1h-5z",
  person: "M12 12a5 5 0 1 0 0-10 5 5 0 0 0 0 10zm-9 9c0-4 4-7 9-7s9 3 9 7v1H3v-1z",
  plus: "M11 4h2v7h7v2h-7v7h-2v-7H4v-2h7z",
  search: "M10 3a7 7 0 0 1 5.6 11.2l5.1 5.1-1.4 1.4-5.1-5.1A7 7 0 1 1 10 3zm0 2a5 5 0 1 0 0 10 5 5 0 0 0 0-10z",
  close: "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z",
  kebab: "M12 5.5a1.8 1.8 0 1 1 0-3.6 1.8 1.8 0 0 1 0 3.6zm0 8.3a1.8 1.8 0 1 1 0-3.6 1.8 1.8 0 0 1 0 3.6zm0 8.3a1.8 1.8 0 1 1 0-3.6 1.8 1.8 0 0 1 0 3.6z",
  send: "M3 20.5 21 12 3 3.5v6.6l12 1.9-12 1.9z",
  paperclip: "M16.5 6v11.5a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v11.5a1.5 1.5 0 0 1-3 0V6H9v10.5a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v12.5a6 6 0 0 0 12 0V6h-1.5z",
  download: "M11 3h2v9.6l3.3-3.3 1.4 1.4-5.7 5.7-5.7-5.7 1.4-1.4 3.3 3.3zM4 19h16v2H4z",
  shield: "M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3zm-1.2 14.2-3.5-3.5 1.4-1.4 2.1 2.1 4.9-4.9 1.4 1.4-6.3 6.3z",
  warning: "M12 2 1 21h22L12 2zm1 15h-2v2h2v-2zm0-7h-2v5h2v-5z",
  check: "M9.5 16.2 5.3 12l-1.4 1.4 5.6 5.6 11-11-1.4-1.4z",
  menu: "M3 6h18v2H3zm0 5h18v2H3zm0 5h18v2H3z",
  team: "M12 2 3 6v2h18V6l-9-4zM5 10v7h3v-7H5zm5.5 0v7h3v-7h-3zM16 10v7h3v-7h-3zM3 19v2h18v-2H3z",
  discussion: "M4 4h16v11H7l-3 3V4zm4 4v2h8V8H8zm0 3v2h5v-2H8z",
  settings: "m19.4 13 .1-1-.1-1 2.1-1.6-2-3.5-2.5 1a7 7 0 0 0-1.7-1L15 3h-4l-.4 2.7c-.6.3-1.2.6-1.7 1l-2.5-1-2 3.5L6.5 11l-.1 1 .1 1-2.1 1.6 2 3.5 2.5-1c.5.4 1.1.7 1.7 1L11 21h4l.4-2.7c.6-.3 1.2-.6 1.7-1l2.5 1 2-3.5-2.2-1.7zM13 15.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7z",
  logout: "M10 3h9a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2h-9v-2h9V5h-9V3zm1.6 4.6L13 9l-2 2h8v2h-8l2 2-1.4 1.4L7.2 12z",
};

/** A decorative icon; give the control around it the accessible name. */
export function Icon(props: { name: IconName; class?: string; title?: string }) {
  return (
    <svg class={`icon ${props.class ?? ""}`} viewBox="0 0 24 24" aria-hidden={props.title ? undefined : "true"} role={props.title ? "img" : undefined} aria-label={props.title}>
      <path d={PATHS[props.name]} fill="currentColor" />
    </svg>
  );
}

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
