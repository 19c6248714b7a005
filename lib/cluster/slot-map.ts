import { SLOTS } from './key-slot.js';

/** One line of `CLUSTER NODES`, as one node sees another (or itself). */
export interface NodeLine {
  id: string;
  /** `host:port` (empty host: the address the line was read from). */
  address: string;
  myself: boolean;
  primary: boolean;
  configEpoch: number;
  /** Slots this line says the node serves (migration markers `[..]` excluded). */
  slots: number[];
}

/** Parses the text of `CLUSTER NODES` read from the node at `from` (`host:port`). */
export function parseClusterNodes(text: string, from: string): NodeLine[] {
  const lines: NodeLine[] = [];
  for (const raw of text.split('\n')) {
    const fields = raw.trim().split(' ');
    if (fields.length < 8) continue;
    const [id, addressField, flagField, , , , epochField] = fields as [string, string, string, string, string, string, string];
    const flags = new Set(flagField.split(','));
    if (flags.has('noaddr') || flags.has('handshake')) continue;
    const myself = flags.has('myself');
    const hostPort = addressField.split('@')[0]!;
    const [host] = splitAddress(hostPort);
    const address = host === '' ? (myself ? from : '') : hostPort;
    if (address === '') continue;
    const slots: number[] = [];
    for (const range of fields.slice(8)) {
      if (range.startsWith('[')) continue;
      const [first, last] = range.split('-').map(Number) as [number, number | undefined];
      for (let slot = first; slot <= (last ?? first); slot++) slots.push(slot);
    }
    lines.push({ id, address, myself, primary: flags.has('master'), configEpoch: Number(epochField), slots });
  }
  return lines;
}

/** `host:port` (the host may be an IPv6 address with colons of its own). */
export function splitAddress(address: string): [host: string, port: number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

export interface SlotMap {
  /** The address of the primary serving each slot; `undefined` while no node claims it. */
  owners: Array<string | undefined>;
  /** Every node address any view mentioned (for the next refresh). */
  addresses: Set<string>;
  /** The slots each primary serves. */
  served: Map<string, Set<number>>;
}

const NONE: ReadonlySet<number> = new Set();

export function slotsServedBy(map: SlotMap, address: string): ReadonlySet<number> {
  return map.served.get(address) ?? NONE;
}

/** `0-5460,10923` */
export function describeSlots(slots: ReadonlySet<number>): string {
  const sorted = [...slots].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    ranges.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return ranges.join(',');
}

/**
 * Who serves each slot, from the `CLUSTER NODES` views of every node that answered. A single view
 * can be stale (ioredis asks one random node, which may not know of a failover or a migration yet),
 * so: a node that answered speaks for itself only, through its own line (a demoted or migrated-from
 * primary no longer claims what others still think it has); a node that did not answer (dead, hung)
 * is taken at the word of whichever view knows it with the highest config epoch. A slot claimed twice
 * goes to the higher config epoch, as in Redis itself. A slot nobody claims yet (a migration whose
 * destination has not been told) stays unowned until a later refresh.
 */
export function resolveSlotMap(views: NodeLine[][]): SlotMap {
  const self = new Map<string, NodeLine>();
  const hearsay = new Map<string, NodeLine>();
  const addresses = new Set<string>();
  for (const view of views) {
    for (const line of view) {
      addresses.add(line.address);
      if (line.myself) self.set(line.id, line);
      else if ((hearsay.get(line.id)?.configEpoch ?? -1) < line.configEpoch) hearsay.set(line.id, line);
    }
  }
  const owners = new Array<string | undefined>(SLOTS).fill(undefined);
  const epochs = new Array<number>(SLOTS).fill(-1);
  const selfClaimed = new Array<boolean>(SLOTS).fill(false);
  const claims = [...self.values(), ...[...hearsay.values()].filter((line) => !self.has(line.id))];
  for (const claim of claims) {
    if (!claim.primary) continue;
    for (const slot of claim.slots) {
      const better = claim.configEpoch > epochs[slot]! || (claim.configEpoch === epochs[slot] && claim.myself && !selfClaimed[slot]);
      if (!better) continue;
      owners[slot] = claim.address;
      epochs[slot] = claim.configEpoch;
      selfClaimed[slot] = claim.myself;
    }
  }
  const served = new Map<string, Set<number>>();
  owners.forEach((owner, slot) => {
    if (owner === undefined) return;
    let slots = served.get(owner);
    if (!slots) served.set(owner, (slots = new Set()));
    slots.add(slot);
  });
  return { owners, addresses, served };
}
