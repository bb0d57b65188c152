/**
 * Just enough of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/) for the demo's gRPC
 * service: messages of strings, booleans, small integers and nested messages, which is all `ballast.demo.Echo` and
 * gRPC server reflection need. The demo must run from `dependencies` alone, and a protobuf library would be one
 * more for a few dozen lines.
 */

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** A field of a message to encode: its number and value (a nested message is its encoded bytes). */
export type Field = readonly [number: number, value: string | Buffer | number | boolean | undefined];

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A message from its fields, in the order given (repeated fields: the same number several times). */
export function encodeMessage(fields: readonly Field[]): Buffer {
  const parts: Buffer[] = [];
  for (const [number, value] of fields) {
    if (value === undefined) continue;
    if (typeof value === 'number' || typeof value === 'boolean') {
      parts.push(Buffer.from([...varint((number << 3) | VARINT), ...varint(Number(value))]));
      continue;
    }
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    parts.push(Buffer.from([...varint((number << 3) | LENGTH_DELIMITED), ...varint(bytes.length)]), bytes);
  }
  return Buffer.concat(parts);
}

/** The length-delimited fields of a message (strings, bytes, nested messages), by number; the last one of each wins. */
export function decodeMessage(bytes: Buffer): Map<number, Buffer> {
  const fields = new Map<number, Buffer>();
  let at = 0;
  const readVarint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length) throw new Error('truncated varint');
      const b = bytes[at++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
      if (scale > 2 ** 63) throw new Error('varint too long');
    }
  };
  while (at < bytes.length) {
    const tag = readVarint();
    const number = Math.floor(tag / 8);
    const wire = tag & 7;
    if (number === 0) throw new Error('field number 0');
    if (wire === VARINT) readVarint();
    else if (wire === FIXED64) at += 8;
    else if (wire === FIXED32) at += 4;
    else if (wire === LENGTH_DELIMITED) {
      const length = readVarint();
      if (at + length > bytes.length) throw new Error('truncated field');
      fields.set(number, bytes.subarray(at, at + length));
      at += length;
    } else throw new Error(`unsupported wire type ${wire}`);
    if (at > bytes.length) throw new Error('truncated field');
  }
  return fields;
}

/** A string field of a decoded message ('' when absent, as proto3 has it). */
export function stringField(fields: Map<number, Buffer>, number: number): string {
  return fields.get(number)?.toString('utf8') ?? '';
}
