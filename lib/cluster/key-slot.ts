/** Redis Cluster has 16384 hash slots. */
export const SLOTS = 16_384;

const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let crc = i << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  TABLE[i] = crc;
}

/**
 * The hash slot of a key or shard channel, as Redis computes it: CRC16 (XMODEM) of the hash tag
 * (the bytes between the first `{` and the next `}`, when not empty), else of the whole name.
 */
export function keySlot(name: string): number {
  // Every publish on a cluster asks this: ASCII names (the usual) are hashed without a Buffer.
  if (/^[\x00-\x7f]*$/.test(name)) return asciiSlot(name);
  let bytes = Buffer.from(name);
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc % SLOTS;
}

function asciiSlot(name: string): number {
  let start = 0;
  let end = name.length;
  const open = name.indexOf('{');
  if (open >= 0) {
    const close = name.indexOf('}', open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ name.charCodeAt(i)) & 0xff]!;
  return crc % SLOTS;
}

/** A hash tag (`{tag}`) whose slot is one of `slots`: internal channels pinned to a shard. */
export function tagForSlots(slots: ReadonlySet<number>): string {
  if (slots.size === 0) throw new Error('no hash slot to pin to');
  for (let i = 0; ; i++) {
    const tag = i.toString(36);
    if (slots.has(keySlot(`{${tag}}`))) return `{${tag}}`;
  }
}
