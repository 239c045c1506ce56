import { test } from "node:test";
import assert from "node:assert/strict";
import { DecodeError, Reader, Writer, fromHex, toHex } from "../../src/crypto/encoding";

test("writer and reader round-trip every field kind", () => {
  const bytes = new Writer().u8(1).u16(0x0203).u32(0x04050607).u64(8n).bytes8(fromHex("aa")).bytes16(fromHex("bbcc")).bytes32(new Uint8Array()).finish();
  assert.equal(toHex(bytes), "01020304050607000000000000000801aa0002bbcc00000000");
  const r = new Reader(bytes);
  assert.equal(r.u8(), 1);
  assert.equal(r.u16(), 0x0203);
  assert.equal(r.u32(), 0x04050607);
  assert.equal(r.u64(), 8n);
  assert.equal(toHex(r.bytes8()), "aa");
  assert.equal(toHex(r.bytes16()), "bbcc");
  assert.equal(r.bytes32().length, 0);
  r.finish();
});

test("a short input is Truncated and extra bytes are TrailingBytes", () => {
  assert.throws(() => new Reader(fromHex("05aa")).bytes8(), (e: unknown) => e instanceof DecodeError && e.kind === "Truncated");
  const r = new Reader(fromHex("0102"));
  r.u8();
  assert.throws(() => r.finish(), (e: unknown) => e instanceof DecodeError && e.kind === "TrailingBytes");
  assert.throws(() => new Reader(fromHex("02")).version(), (e: unknown) => e instanceof DecodeError && e.kind === "UnsupportedVersion");
});

test("UTF-8 text keeps a leading byte order mark, as its bytes say", async () => {
  const { fromUtf8, utf8 } = await import("../../src/crypto/encoding");
  assert.equal(fromUtf8(fromHex("efbbbf41")), "\ufeffA");
  assert.equal(toHex(utf8("\ufeffA")), "efbbbf41");
});
