// The canonical binary encoding (docs/protocol.md §1.2): big-endian integers,
// length-prefixed byte strings, and decoders that reject short input, trailing
// bytes and out-of-range fields, so every structure has exactly one encoding.

/** Why bytes could not be decoded (the protocol's decode error kinds). */
export type DecodeErrorKind = "Truncated" | "TrailingBytes" | "UnsupportedVersion" | "InvalidField";

export class DecodeError extends Error {
  constructor(
    readonly kind: DecodeErrorKind,
    detail?: string,
  ) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = "DecodeError";
  }
}

/** Builds the canonical encoding of a structure. */
export class Writer {
  private parts: Uint8Array[] = [];
  private length = 0;

  u8(v: number): this {
    return this.raw(Uint8Array.of(v & 0xff));
  }

  u16(v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v);
    return this.raw(b);
  }

  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v);
    return this.raw(b);
  }

  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v);
    return this.raw(b);
  }

  raw(v: Uint8Array): this {
    this.parts.push(v);
    this.length += v.length;
    return this;
  }

  bytes8(v: Uint8Array): this {
    if (v.length > 0xff) throw new RangeError("bytes8 field longer than 255 bytes");
    return this.u8(v.length).raw(v);
  }

  bytes16(v: Uint8Array): this {
    if (v.length > 0xffff) throw new RangeError("bytes16 field longer than 65535 bytes");
    return this.u16(v.length).raw(v);
  }

  bytes32(v: Uint8Array): this {
    return this.u32(v.length).raw(v);
  }

  finish(): Uint8Array {
    return concat(...this.parts);
  }
}

/** Reads a structure from its canonical encoding; never throws anything but DecodeError. */
export class Reader {
  private offset = 0;

  constructor(private readonly input: Uint8Array) {}

  take(n: number): Uint8Array {
    if (this.input.length - this.offset < n) throw new DecodeError("Truncated");
    const out = this.input.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  u8(): number {
    return this.take(1)[0]!;
  }

  u16(): number {
    const b = this.take(2);
    return new DataView(b.buffer, b.byteOffset, 2).getUint16(0);
  }

  u32(): number {
    const b = this.take(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }

  u64(): bigint {
    const b = this.take(8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
  }

  bytes8(): Uint8Array {
    return this.take(this.u8());
  }

  bytes16(): Uint8Array {
    return this.take(this.u16());
  }

  bytes32(): Uint8Array {
    return this.take(this.u32());
  }

  /** Reads the version byte and rejects any version but 1. */
  version(): void {
    const v = this.u8();
    if (v !== 1) throw new DecodeError("UnsupportedVersion", String(v));
  }

  remaining(): number {
    return this.input.length - this.offset;
  }

  /** Rejects bytes left after the structure. */
  finish(): void {
    if (this.offset !== this.input.length) throw new DecodeError("TrailingBytes");
  }
}

/** `bytes8(label) ‖ parts…`: what every signature covers (§1.4). */
export function signingInput(label: string, ...parts: Uint8Array[]): Uint8Array {
  const w = new Writer().bytes8(utf8(label));
  for (const p of parts) w.raw(p);
  return w.finish();
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function fromUtf8(b: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(b);
}

export function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) throw new DecodeError("InvalidField", "hex");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(s: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(s);
  } catch {
    throw new DecodeError("InvalidField", "base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Constant-time comparison of two byte strings of public length. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
