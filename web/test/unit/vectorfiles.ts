// Reads the protocol's vector files (testdata/vectors/sotto) for the unit tests.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fromHex } from "../../src/crypto/encoding";

export type Json = { [k: string]: unknown };

export function loadVector(name: string): Json {
  return JSON.parse(readFileSync(join(process.cwd(), "..", "testdata", "vectors", "sotto", name), "utf8")) as Json;
}

export function str(v: Json, key: string): string {
  const x = v[key];
  if (typeof x !== "string") throw new Error(`vector field ${key} is not a string`);
  return x;
}

export function hex(v: Json, key: string): Uint8Array {
  return fromHex(str(v, key));
}

export function obj(v: Json, key: string): Json {
  const x = v[key];
  if (typeof x !== "object" || x === null || Array.isArray(x)) throw new Error(`vector field ${key} is not an object`);
  return x as Json;
}

export function arr(v: Json, key: string): Json[] {
  const x = v[key];
  if (!Array.isArray(x)) throw new Error(`vector field ${key} is not an array`);
  return x as Json[];
}

/** A random source that hands out exactly the given bytes, in order, then fails. */
export function scripted(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  const queue = [...chunks];
  return (n: number) => {
    const next = queue.shift();
    if (!next || next.length !== n) throw new Error(`scripted randomness: wanted ${n} bytes, have ${next?.length ?? "none"}`);
    return Uint8Array.from(next);
  };
}

/** A copy of `bytes` with bit 0 of byte `i` flipped. */
export function flip(bytes: Uint8Array, i: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[i] = (out[i] ?? 0) ^ 1;
  return out;
}
