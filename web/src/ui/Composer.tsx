// The message box: Enter sends, Shift+Enter starts a new line; a file button uploads
// with a progress bar.

import { useRef, useState } from "preact/hooks";
import { Icon } from "./kit";

export function Composer(props: { label: string; disabled?: string | null; onSend: (text: string) => Promise<void>; onFile?: (file: File, progress: (sent: number, total: number) => void) => Promise<void>; fileRefusal?: string | null }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [progress, setProgress] = useState<{ name: string; sent: number; total: number } | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const area = useRef<HTMLTextAreaElement>(null);

  const send = async () => {
    const t = text.trim();
    if (!t) return;
    setError(null);
    try {
      await props.onSend(t);
      setText("");
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
    area.current?.focus();
  };

  const pick = async (file: File) => {
    if (!props.onFile) return;
    setError(null);
    setProgress({ name: file.name, sent: 0, total: file.size });
    try {
      await props.onFile(file, (sent, total) => setProgress({ name: file.name, sent, total }));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setProgress(null);
      if (fileInput.current) fileInput.current.value = "";
    }
  };

  return (
    <div class="composer">
      {progress && (
        <div class="upload">
          <label>
            Uploading {progress.name}
            <progress max={progress.total || 1} value={progress.sent} aria-label={`Upload of ${progress.name}`} />
          </label>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {props.disabled ? (
        <p class="composer-disabled" role="status">
          {props.disabled}
        </p>
      ) : (
        <form
          class="composer-row"
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          {props.onFile && (
            <>
              <button type="button" class="icon-button" aria-label="Upload file" title={props.fileRefusal ?? "Upload file"} disabled={!!props.fileRefusal} onClick={() => fileInput.current?.click()}>
                <Icon name="paperclip" />
              </button>
              <input ref={fileInput} type="file" class="visually-hidden" aria-label="Choose a file to upload" tabIndex={-1} onChange={(e) => e.currentTarget.files?.[0] && void pick(e.currentTarget.files[0])} />
            </>
          )}
          <textarea
            ref={area}
            rows={1}
            aria-label={props.label}
            placeholder={props.label}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                void send();
              }
            }}
          />
          <button type="submit" class="icon-button send" aria-label="Send" disabled={!text.trim()}>
            <Icon name="send" />
          </button>
        </form>
      )}
    </div>
  );
}
