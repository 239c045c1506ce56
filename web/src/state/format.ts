// Plain-text conventions shared with the terminal client: file references in
// plaintext rooms (docs/api.md, Files) and human-readable sizes.

/** `NAME (SIZE) <file:ID>`: the text announcing a file in a plaintext room. */
export function fileText(name: string, size: number, fileId: string): string {
  return `${name} (${humanSize(size)}) <file:${fileId}>`;
}

const FILE_REF = /<file:([A-Za-z0-9._:-]{1,64})>/g;

/** The last well-formed `<file:ID>` in a text, and the text before it as the name. */
export function parseFileText(text: string): { fileId: string; label: string } | null {
  let last: RegExpExecArray | null = null;
  for (const m of text.matchAll(FILE_REF)) last = m as RegExpExecArray;
  if (!last) return null;
  const label = text.slice(0, last.index).trim();
  return { fileId: last[1]!, label };
}

export function humanSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** A client-chosen message id: 16 random bytes in hex, as encrypted rooms need. */
export function newMessageId(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
