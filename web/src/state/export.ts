// Room export (E9): the messages a user selected, as they read them in this browser,
// written as JSON or as a PDF transcript. Nothing leaves the device: the file is built
// here from the decrypted views. A message that could not be opened is exported with
// the reason it could not, never with its ciphertext.
//
// The JSON has exactly the shape of the terminal client's export
// (crates/sotto-client/src/export.rs), so exports from both clients read the same:
//   { "room": ..., "messages": [{ "id", "sender", "sent_at", "text", "attachments", "encrypted" }] }
// pretty-printed with two spaces and a final line break.
//
// Text is sanitised on the way out, as there: control characters (other than line
// breaks in a message's text) and bidirectional overrides become U+FFFD.

import { humanSize } from "./format";
import type { MessageView, Workspace } from "./workspace";

/** One message as exported, independent of the workspace. */
export interface ExportItem {
  id: string;
  /** The sender's username (the terminal client exports the same). */
  sender: string;
  senderId: string;
  /** Unix milliseconds. */
  time: number;
  /** The text; null when the message could not be opened (see `problem`). */
  text: string | null;
  /** Why it could not be opened, in the user's words. */
  problem: string | null;
  encrypted: boolean;
  verified: boolean;
  file: { name: string; size: number | null } | null;
}

/** Everything an export needs: plain data, so it can be built and tested anywhere. */
export interface ExportInput {
  roomTitle: string;
  roomId: string;
  /** Unix milliseconds. */
  exportedAt: number;
  messages: ExportItem[];
}

export type ExportFormat = "json" | "pdf";

// --- from the workspace ---

/** Deleted and off-the-record messages are never exported. */
export function exportable(view: MessageView): boolean {
  return !view.deleted && !view.otr;
}

/** The export of `views` (in the order given) of the room `roomId`. */
export function exportInput(ws: Workspace, roomId: string, views: MessageView[], now: number = Date.now()): ExportInput {
  const room = ws.rooms.get(roomId);
  return {
    roomTitle: room ? ws.roomTitle(room) : "Room",
    roomId,
    exportedAt: now,
    messages: views.filter(exportable).map((v) => ({
      id: v.id,
      sender: ws.username(v.senderId),
      senderId: v.senderId,
      time: v.time,
      text: v.problem !== null ? null : v.text,
      problem: v.problem,
      encrypted: v.encrypted,
      verified: v.verified,
      file: v.file ? { name: v.file.name, size: v.file.size } : null,
    })),
  };
}

export function exportJson(ws: Workspace, roomId: string, views: MessageView[]): Uint8Array<ArrayBuffer> {
  return renderJson(exportInput(ws, roomId, views));
}

export function exportPdf(ws: Workspace, roomId: string, views: MessageView[]): Uint8Array<ArrayBuffer> {
  return renderPdf(exportInput(ws, roomId, views));
}

/** The download's name: the room's title made safe for file systems, and the date. */
export function fileName(ws: Workspace, roomId: string, format: ExportFormat, now: number = Date.now()): string {
  const room = ws.rooms.get(roomId);
  return exportFileName(room ? ws.roomTitle(room) : "room", format, now);
}

export function exportFileName(title: string, format: ExportFormat, at: number): string {
  const slug =
    title
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .replace(/[^A-Za-z0-9_-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 60)
      .replace(/-+$/, "") || "room";
  return `${slug}-${utc(at).slice(0, 10)}.${format}`;
}

// --- text ---

/** Control characters (C0, DEL, C1) and the bidirectional embedding, override and isolate marks. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/** A UTF-16 surrogate without its other half (not a character). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A message text: line breaks kept (`\r\n` and `\r` become `\n`), tabs become spaces. */
export function cleanText(text: string): string {
  return text
    .replace(/\r\n?/g, "\n")
    .replace(/\t/g, " ")
    .replace(LONE_SURROGATE, "\ufffd")
    .replace(UNSAFE, (c) => (c === "\n" ? c : "\ufffd"));
}

/** A one-line field (name, id): line breaks too become U+FFFD. */
export function cleanLine(text: string): string {
  return text.replace(LONE_SURROGATE, "\ufffd").replace(UNSAFE, "\ufffd");
}

/** `YYYY-MM-DD HH:MM:SS UTC` for Unix milliseconds (clamped to years 1970–9999). */
export function utc(ms: number): string {
  const t = Number.isFinite(ms) ? Math.min(Math.max(Math.trunc(ms), 0), 253_402_300_799_999) : 0;
  const iso = new Date(t).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

/** What an exported message says: its text, or why it could not be opened. */
function messageText(m: ExportItem): string {
  if (m.problem !== null || m.text === null) return `[could not be opened: ${m.problem ?? "no text"}]`;
  return m.text;
}

// --- JSON ---

export function renderJson(input: ExportInput): Uint8Array<ArrayBuffer> {
  const transcript = {
    room: cleanLine(input.roomTitle),
    messages: input.messages.map((m) => ({
      id: cleanLine(m.id),
      sender: cleanLine(m.sender),
      sent_at: Number.isFinite(m.time) ? Math.trunc(m.time) : 0,
      text: cleanText(messageText(m)),
      attachments: m.file ? [cleanLine(m.file.name)] : [],
      encrypted: m.encrypted,
    })),
  };
  return new TextEncoder().encode(JSON.stringify(transcript, null, 2) + "\n") as Uint8Array<ArrayBuffer>;
}

// --- PDF ---
//
// A small PDF 1.4 writer: a catalog, a page tree, the standard Helvetica and
// Helvetica-Bold fonts (which every reader has, so nothing is embedded), an info
// dictionary, and per A4 page one uncompressed content stream of positioned lines.
// The file is all 7-bit ASCII (string bytes above 0x7E are written as octal escapes),
// so a byte offset is a character offset, which keeps the cross-reference table simple.

const PAGE_WIDTH = 595;
const PAGE_HEIGHT = 842;
const MARGIN = 56;
const TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN;
const BODY_SIZE = 10;
const TITLE_SIZE = 16;
const FOOTER_SIZE = 8;
/** Message text, problems and attachments sit under their header. */
const INDENT = 12;

/** Helvetica's and Helvetica-Bold's advance widths (1/1000 em) for ASCII 0x20–0x7E. */
// prettier-ignore
const REGULAR_ASCII = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
  556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
  1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
  333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
  556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];
// prettier-ignore
const BOLD_ASCII = [
  278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
  556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
  975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
  333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
  611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];

/**
 * Widths for every WinAnsi byte. Above ASCII, an accented letter takes the width of
 * its base letter; anything else is counted as a full em, which is never narrower
 * than the real glyph, so wrapped lines stay inside the margins.
 */
function widthTable(ascii: number[]): number[] {
  const table: number[] = [];
  for (let b = 0; b < 256; b++) {
    if (b >= 0x20 && b <= 0x7e) table.push(ascii[b - 0x20]!);
    else if (b >= 0xa0) {
      const base = String.fromCharCode(b).normalize("NFD").charCodeAt(0);
      table.push(base >= 0x20 && base <= 0x7e ? ascii[base - 0x20]! : 1000);
    } else table.push(1000);
  }
  return table;
}
const WIDTHS = { regular: widthTable(REGULAR_ASCII), bold: widthTable(BOLD_ASCII) };

/** WinAnsi codes 0x80–0x9F, which are not the Unicode code points of the same number. */
const WIN_ANSI_HIGH: Record<string, number> = {
  "€": 0x80, "‚": 0x82, "ƒ": 0x83, "„": 0x84, "…": 0x85, "†": 0x86, "‡": 0x87, "ˆ": 0x88,
  "‰": 0x89, "Š": 0x8a, "‹": 0x8b, "Œ": 0x8c, "Ž": 0x8e, "\u2018": 0x91, "\u2019": 0x92,
  "\u201c": 0x93, "\u201d": 0x94, "•": 0x95, "–": 0x96, "—": 0x97, "˜": 0x98, "™": 0x99,
  "š": 0x9a, "›": 0x9b, "œ": 0x9c, "ž": 0x9e, "Ÿ": 0x9f,
};

/**
 * `text` in the fonts' WinAnsi encoding, one byte per character (as a string of char
 * codes below 256). The standard fonts have no glyphs outside WinAnsi and we embed no
 * font, so every other character (CJK, emoji, U+FFFD…) is shown as `?`.
 */
export function winAnsi(text: string): string {
  let out = "";
  for (const c of text) {
    const code = c.codePointAt(0)!;
    if ((code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff)) out += c;
    else out += String.fromCharCode(WIN_ANSI_HIGH[c] ?? 0x3f);
  }
  return out;
}

type Style = "regular" | "bold";

function measure(bytes: string, style: Style, size: number): number {
  const table = WIDTHS[style];
  let w = 0;
  for (let i = 0; i < bytes.length; i++) w += table[bytes.charCodeAt(i)]!;
  return (w * size) / 1000;
}

/** Cuts WinAnsi text into lines no wider than `width` points, at spaces where it can. */
export function wrap(bytes: string, style: Style, size: number, width: number): string[] {
  const fits = (s: string) => measure(s, style, size) <= width;
  const out: string[] = [];
  let line = "";
  for (let word of bytes.split(" ")) {
    if (line !== "" && fits(`${line} ${word}`)) {
      line += ` ${word}`;
      continue;
    }
    if (line !== "") out.push(line);
    line = "";
    // A word wider than the line is split where it must be.
    while (!fits(word)) {
      let n = 1;
      while (n < word.length && fits(word.slice(0, n + 1))) n++;
      out.push(word.slice(0, n));
      word = word.slice(n);
    }
    line = word;
  }
  out.push(line);
  return out;
}

/** One line of the transcript; `space` is the room it takes above its baseline. */
interface Line {
  style: Style;
  size: number;
  x: number;
  text: string;
  space: number;
}

function layout(input: ExportInput): Line[] {
  const lines: Line[] = [];
  const add = (text: string, style: Style, size: number, indent = 0) => {
    for (const piece of wrap(winAnsi(text), style, size, TEXT_WIDTH - indent)) lines.push({ style, size, x: MARGIN + indent, text: piece, space: size * 1.3 });
  };
  const gap = (space: number) => lines.push({ style: "regular", size: BODY_SIZE, x: MARGIN, text: "", space });

  add(cleanLine(input.roomTitle), "bold", TITLE_SIZE);
  add(`Exported ${utc(input.exportedAt)}`, "regular", BODY_SIZE);
  add(input.messages.length === 1 ? "1 message" : `${input.messages.length} messages`, "regular", BODY_SIZE);
  gap(BODY_SIZE);
  for (const m of input.messages) {
    const marks = [m.encrypted ? "[encrypted]" : "", m.verified ? "[verified]" : ""].filter(Boolean).join(" ");
    add([cleanLine(m.sender), utc(m.time), marks].filter(Boolean).join("   "), "bold", BODY_SIZE);
    if (m.problem !== null || m.text === null) add(cleanLine(messageText(m)), "regular", BODY_SIZE, INDENT);
    else if (m.text !== "" || !m.file) for (const paragraph of cleanText(m.text).split("\n")) add(paragraph, "regular", BODY_SIZE, INDENT);
    if (m.file) add(`Attachment: ${cleanLine(m.file.name)}${m.file.size !== null ? ` (${humanSize(m.file.size)})` : ""}`, "regular", BODY_SIZE, INDENT);
    gap(BODY_SIZE * 0.8);
  }
  return lines;
}

/** Lines placed on pages: each page's lines with their baselines. */
function paginate(lines: Line[]): { line: Line; y: number }[][] {
  const pages: { line: Line; y: number }[][] = [[]];
  let y = PAGE_HEIGHT - MARGIN;
  for (const line of lines) {
    if (y - line.space < MARGIN) {
      pages.push([]);
      y = PAGE_HEIGHT - MARGIN;
    }
    y -= line.space;
    if (line.text !== "") pages[pages.length - 1]!.push({ line, y });
  }
  return pages;
}

/** A PDF literal string of WinAnsi bytes, in printable ASCII. */
function pdfString(bytes: string): string {
  let out = "(";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.charCodeAt(i);
    if (b === 0x28 || b === 0x29 || b === 0x5c) out += `\\${bytes[i]}`;
    else if (b >= 0x20 && b <= 0x7e) out += bytes[i];
    else out += `\\${b.toString(8).padStart(3, "0")}`;
  }
  return `${out})`;
}

/** A PDF text string in UTF-16BE with its byte order mark, as hex (for the title). */
function pdfTextString(text: string): string {
  let hex = "<FEFF";
  for (let i = 0; i < text.length; i++) hex += text.charCodeAt(i).toString(16).toUpperCase().padStart(4, "0");
  return `${hex}>`;
}

/** `D:YYYYMMDDHHmmSSZ`, a PDF date. */
function pdfDate(ms: number): string {
  return `D:${utc(ms).slice(0, 19).replace(/[- :]/g, "")}Z`;
}

function fmt(n: number): string {
  return String(Math.round(n * 100) / 100);
}

export function renderPdf(input: ExportInput): Uint8Array<ArrayBuffer> {
  const pages = paginate(layout(input));
  const fonts: Record<Style, string> = { regular: "/F1", bold: "/F2" };
  // Objects 1–5 are fixed; then each page and its content stream.
  const pageRef = (i: number) => 6 + 2 * i;
  const objects: string[] = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    `<< /Type /Pages /Kids [${pages.map((_, i) => `${pageRef(i)} 0 R`).join(" ")}] /Count ${pages.length} >>`,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    `<< /Title ${pdfTextString(cleanLine(input.roomTitle))} /Producer (Sotto) /CreationDate (${pdfDate(input.exportedAt)}) >>`,
  ];
  pages.forEach((placed, i) => {
    const ops = placed.map(({ line, y }) => `BT ${fonts[line.style]} ${line.size} Tf ${fmt(line.x)} ${fmt(y)} Td ${pdfString(line.text)} Tj ET`);
    ops.push(`BT /F1 ${FOOTER_SIZE} Tf ${MARGIN} ${MARGIN / 2} Td ${pdfString(`Page ${i + 1} of ${pages.length}`)} Tj ET`);
    const content = ops.join("\n");
    objects.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${PAGE_WIDTH} ${PAGE_HEIGHT}] /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents ${pageRef(i) + 1} 0 R >>`);
    objects.push(`<< /Length ${content.length} >>\nstream\n${content}\nendstream`);
  });

  let out = "%PDF-1.4\n";
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  // Each cross-reference entry is exactly 20 bytes: offset, generation, kind, space, LF.
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) out += `${String(offset).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info 5 0 R >>\nstartxref\n${xref}\n%%EOF\n`;

  const bytes = new Uint8Array(out.length);
  for (let i = 0; i < out.length; i++) bytes[i] = out.charCodeAt(i);
  return bytes;
}
