// The "Export messages" side panel (E9): the messages picked in the room, the method
// (a downloaded file) and the output format (JSON or PDF). The file is built here,
// from what this browser decrypted, and handed to the browser's downloads.

import { useEffect, useId, useRef, useState } from "preact/hooks";
import { type ExportFormat, exportJson, exportPdf, exportable, fileName } from "../state/export";
import type { MessageView, Workspace } from "../state/workspace";
import { ErrorText, Icon, Panel } from "./kit";
import "./export.css";

const TYPES: Record<ExportFormat, string> = { json: "application/json", pdf: "application/pdf" };

export function ExportPanel(props: { ws: Workspace; roomId: string; selected: MessageView[]; onClose: () => void }) {
  const { ws, roomId, selected } = props;
  const [format, setFormat] = useState<ExportFormat>("json");
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const urls = useRef<string[]>([]);
  const methodId = useId();
  const formatId = useId();
  // Object URLs still waiting to be revoked go when the panel does.
  useEffect(() => () => urls.current.forEach((u) => URL.revokeObjectURL(u)), []);

  const count = selected.length;
  const included = selected.filter(exportable);
  const left = count - included.length;
  const unopened = included.filter((v) => v.problem !== null).length;

  const download = () => {
    setError(null);
    setDone(null);
    try {
      if (included.length === 0) throw new Error("Select at least one message to export.");
      const bytes = format === "json" ? exportJson(ws, roomId, selected) : exportPdf(ws, roomId, selected);
      const url = URL.createObjectURL(new Blob([bytes], { type: TYPES[format] }));
      urls.current.push(url);
      const a = document.createElement("a");
      a.href = url;
      a.download = fileName(ws, roomId, format);
      a.rel = "noopener";
      document.body.append(a);
      a.click();
      a.remove();
      // Revoked once the browser has had time to start the download.
      setTimeout(() => {
        URL.revokeObjectURL(url);
        urls.current = urls.current.filter((u) => u !== url);
      }, 10_000);
      setDone(`Downloading ${a.download}.`);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  return (
    <Panel
      title="Export messages"
      onClose={props.onClose}
      footer={
        <button type="button" class="button primary" disabled={included.length === 0} onClick={download}>
          <Icon name="download" /> Download
        </button>
      }
    >
      <div class="export">
        <p class="export-summary" aria-live="polite">
          {count === 1 ? "1 message selected" : `${count} messages selected`}
        </p>
        {left > 0 && <p class="hint">{left === 1 ? "1 deleted or off-the-record message is left out." : `${left} deleted or off-the-record messages are left out.`}</p>}

        <fieldset class="export-group" role="radiogroup" aria-labelledby={methodId}>
          <legend id={methodId}>Method</legend>
          <label class="export-choice">
            <input type="radio" name={`${methodId}-method`} value="download" checked />
            Download file
          </label>
        </fieldset>

        <fieldset class="export-group" role="radiogroup" aria-labelledby={formatId}>
          <legend id={formatId}>Output format</legend>
          {(["json", "pdf"] as const).map((f) => (
            <label class="export-choice" key={f}>
              <input type="radio" name={`${formatId}-format`} value={f} checked={format === f} onChange={() => setFormat(f)} />
              {f.toUpperCase()}
            </label>
          ))}
        </fieldset>

        {unopened > 0 && (
          <p class="export-warning" role="note">
            <Icon name="key" />
            {unopened === 1 ? "1 selected message could not be opened" : `${unopened} selected messages could not be opened`} and will be exported with the reason only.
            {!ws.e2e.unlocked && " Enter your E2EE password first to include the text."}
          </p>
        )}

        <p class="export-note" role="note">
          <Icon name="lock" />
          The export is decrypted on this device and saved unencrypted. Store and share the file responsibly.
        </p>

        <ErrorText error={error} />
        {done && (
          <p class="export-done" role="status">
            {done}
          </p>
        )}
      </div>
    </Panel>
  );
}
