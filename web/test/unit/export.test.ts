import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ExportInput, type ExportItem, cleanText, exportFileName, renderJson, renderPdf, utc, winAnsi, wrap } from "../../src/state/export";

const at = 1_795_398_172_123; // 2026-11-23 01:42:52 UTC

function item(over: Partial<ExportItem>): ExportItem {
  return { id: "m", sender: "alice", senderId: "u-alice", time: at, text: "", problem: null, encrypted: false, verified: false, file: null, ...over };
}

function sample(): ExportInput {
  return {
    roomTitle: "Finance",
    roomId: "r1",
    exportedAt: at + 60_000,
    messages: [
      item({ id: "m1", time: 1_795_398_172_000, text: "The quarterly numbers are in.", encrypted: true, verified: true, file: { name: "report.pdf", size: 12_345 } }),
      item({ id: "m2", sender: "bob", senderId: "u-bob", time: 1_795_398_232_000, text: "Thanks, reading them now.\nSecond line here." }),
      item({ id: "m3", sender: "carol", senderId: "u-carol", text: null, problem: "Waiting for the room key", encrypted: true }),
    ],
  };
}

const decode = (b: Uint8Array) => new TextDecoder().decode(b);
const latin1 = (b: Uint8Array) => Array.from(b, (x) => String.fromCharCode(x)).join("");

test("times are UTC and clamped like the terminal client's", () => {
  assert.equal(utc(0), "1970-01-01 00:00:00 UTC");
  assert.equal(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
  assert.equal(utc(at), "2026-11-23 01:42:52 UTC");
  assert.equal(utc(-5), "1970-01-01 00:00:00 UTC");
  assert.equal(utc(Number.MAX_SAFE_INTEGER), "9999-12-31 23:59:59 UTC");
  assert.equal(utc(Number.NaN), "1970-01-01 00:00:00 UTC");
});

test("JSON has the terminal client's shape, byte for byte", () => {
  const out = decode(renderJson(sample()));
  const expected = `{
  "room": "Finance",
  "messages": [
    {
      "id": "m1",
      "sender": "alice",
      "sent_at": 1795398172000,
      "text": "The quarterly numbers are in.",
      "attachments": [
        "report.pdf"
      ],
      "encrypted": true
    },
    {
      "id": "m2",
      "sender": "bob",
      "sent_at": 1795398232000,
      "text": "Thanks, reading them now.\\nSecond line here.",
      "attachments": [],
      "encrypted": false
    },
    {
      "id": "m3",
      "sender": "carol",
      "sent_at": ${at},
      "text": "[could not be opened: Waiting for the room key]",
      "attachments": [],
      "encrypted": true
    }
  ]
}
`;
  assert.equal(out, expected);
  const back = JSON.parse(out) as { room: string; messages: { id: string; text: string }[] };
  assert.equal(back.room, "Finance");
  assert.deepEqual(
    back.messages.map((m) => m.id),
    ["m1", "m2", "m3"],
  );
});

test("JSON is sanitised: no control characters, bidi overrides or lone surrogates", () => {
  const input = sample();
  input.roomTitle = "R\u0007oom";
  input.messages[0] = item({ id: "m1", sender: "eve\nmallory", text: "red \u001b[31malert\u202e\r\nnext\ttab \ud800" });
  const back = JSON.parse(decode(renderJson(input))) as { room: string; messages: { sender: string; text: string }[] };
  assert.equal(back.room, "R\ufffdoom");
  assert.equal(back.messages[0]!.sender, "eve\ufffdmallory");
  assert.equal(back.messages[0]!.text, "red \ufffd[31malert\ufffd\nnext tab \ufffd");
  assert.equal(cleanText("a\u0085b"), "a\ufffdb");
});

test("characters outside WinAnsi become question marks", () => {
  assert.equal(winAnsi("café – 你好 😀 €"), "caf\u00e9 \u0096 ?? ? \u0080");
});

test("lines wrap at spaces, long words are split, and nothing is lost", () => {
  const lines = wrap("aaaa bbbb cccc", "regular", 10, 60);
  assert.ok(lines.length > 1, String(lines));
  assert.equal(lines.join(" "), "aaaa bbbb cccc");
  const long = "x".repeat(500);
  const pieces = wrap(long, "bold", 10, 100);
  assert.ok(pieces.length > 5);
  assert.equal(pieces.join(""), long);
  assert.deepEqual(wrap("", "regular", 10, 100), [""]);
});

test("the download is named after the room and the date", () => {
  assert.equal(exportFileName("Finance team", "json", at), "Finance-team-2026-11-23.json");
  assert.equal(exportFileName("Café / ../etc", "pdf", at), "Cafe-etc-2026-11-23.pdf");
  assert.equal(exportFileName("你好", "pdf", 0), "room-1970-01-01.pdf");
});

/** Checks the PDF's structure: header, every xref offset at its object, the trailer. Returns the page count. */
function checkStructure(pdf: Uint8Array): number {
  const text = latin1(pdf);
  assert.ok(text.startsWith("%PDF-1.4\n"), "starts with the PDF header");
  assert.ok(text.endsWith("%%EOF\n"), "ends with %%EOF");
  const startxref = /startxref\n(\d+)\n%%EOF\n$/.exec(text);
  assert.ok(startxref, "has startxref");
  const xrefAt = Number(startxref[1]);
  assert.equal(text.slice(xrefAt, xrefAt + 5), "xref\n", "startxref points at the xref table");
  const head = /^xref\n0 (\d+)\n/.exec(text.slice(xrefAt));
  assert.ok(head);
  const count = Number(head[1]);
  const entriesAt = xrefAt + head[0].length;
  for (let i = 0; i < count; i++) {
    const entry = text.slice(entriesAt + 20 * i, entriesAt + 20 * (i + 1));
    assert.match(entry, /^\d{10} \d{5} [nf] \n$/, `xref entry ${i} is 20 bytes`);
    if (i === 0) {
      assert.equal(entry, "0000000000 65535 f \n");
      continue;
    }
    const offset = Number(entry.slice(0, 10));
    assert.ok(text.startsWith(`${i} 0 obj\n`, offset), `object ${i} is at offset ${offset}`);
  }
  const trailer = text.slice(entriesAt + 20 * count);
  assert.ok(trailer.startsWith(`trailer\n<< /Size ${count} /Root 1 0 R /Info 5 0 R >>`), trailer);
  // Every stream's /Length is the length of its data.
  for (const m of text.matchAll(/<< \/Length (\d+) >>\nstream\n/g)) {
    const start = m.index + m[0].length;
    assert.equal(text.slice(start + Number(m[1]), start + Number(m[1]) + 10), "\nendstream", "stream length");
  }
  const pages = /\/Type \/Pages \/Kids \[[^\]]*\] \/Count (\d+)/.exec(text);
  assert.ok(pages);
  assert.equal((text.match(/\/Type \/Page /g) ?? []).length, Number(pages[1]));
  assert.ok(/^[\x00-\x7f]*$/.test(text), "the file is 7-bit ASCII");
  return Number(pages[1]);
}

/** All the text a PDF reader extracts, with runs of white space made single spaces. */
function extract(pdf: Uint8Array): string {
  const probe = spawnSync("pdftotext", ["-v"], { encoding: "utf8" });
  if (probe.error) assert.fail("pdftotext is not installed: install poppler-utils (apt-get install -y poppler-utils) to run the PDF text checks");
  const dir = mkdtempSync(join(tmpdir(), "sotto-export-"));
  try {
    const file = join(dir, "export.pdf");
    writeFileSync(file, pdf);
    const run = spawnSync("pdftotext", ["-enc", "UTF-8", file, "-"], { encoding: "utf8" });
    assert.equal(run.status, 0, `pdftotext failed: ${run.stderr}`);
    assert.equal(run.stderr, "", "pdftotext reports no syntax errors");
    return run.stdout.replace(/\s+/g, " ");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("PDF: valid structure, and a reader finds the room, senders, times, marks, texts and attachments", () => {
  const pdf = renderPdf(sample());
  assert.equal(checkStructure(pdf), 1);
  const text = extract(pdf);
  for (const needle of [
    "Finance",
    "Exported 2026-11-23 01:43:52 UTC",
    "3 messages",
    "alice",
    "2026-11-23 01:42:52 UTC",
    "[encrypted] [verified]",
    "The quarterly numbers are in.",
    "bob",
    "Thanks, reading them now.",
    "Second line here.",
    "Attachment: report.pdf (12 KiB)",
    "carol",
    "[could not be opened: Waiting for the room key]",
  ]) {
    assert.ok(text.includes(needle), `${JSON.stringify(needle)} missing from ${JSON.stringify(text)}`);
  }
  assert.ok(!/bob\s+\S+ \S+ UTC\s+\[encrypted\]/.test(text), "a plaintext message is not marked encrypted");
});

test("PDF: a long export spans several pages, wraps long text, and survives any characters", () => {
  const messages = Array.from({ length: 120 }, (_, i) => item({ id: `m${i}`, sender: `user${i}`, time: i * 60_000, text: `message number ${i}` }));
  const long = Array.from({ length: 600 }, (_, i) => `word${i}`).join(" ");
  messages[3]!.text = long;
  messages[4]!.text = "emoji 😀, CJK 你好, RTL \u202eolleh, café, ESC \u001b, NUL \u0000 end, (parens) and \\backslash";
  messages[5]!.sender = "x".repeat(500);
  messages[6]!.time = Number.MIN_SAFE_INTEGER;
  messages[7]!.text = "line one\n\nline three after a blank";
  const pdf = renderPdf({ roomTitle: "Busy room", roomId: "r2", exportedAt: at, messages });
  const pages = checkStructure(pdf);
  assert.ok(pages > 5, `${pages} pages`);
  const text = extract(pdf);
  // Text that runs onto the next page has the page footer in between.
  const flowing = text.replace(/ Page \d+ of \d+/g, "");
  for (const m of messages) {
    if (m === messages[4]) continue;
    assert.ok(flowing.includes(m.text!.replace(/\s+/g, " ")), `the text of ${m.id} is missing`);
  }
  assert.ok(text.includes("emoji ?, CJK ??, RTL ?olleh, café, ESC ?, NUL ? end, (parens) and \\backslash"), text);
  assert.ok(text.includes("user119"));
  assert.ok(text.includes(`Page ${pages} of ${pages}`));
});

test("PDF: an empty export is a valid one-page document", () => {
  const pdf = renderPdf({ roomTitle: "Quiet", roomId: "r3", exportedAt: at, messages: [] });
  assert.equal(checkStructure(pdf), 1);
  const text = extract(pdf);
  assert.ok(text.includes("Quiet"));
  assert.ok(text.includes("0 messages"));
});
