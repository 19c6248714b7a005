/** Types for cluster-key-slot (the CRC16 slot hash ioredis itself uses; the package ships none). */
declare module 'cluster-key-slot' {
  /** Hash slot (0..16383) of a key or shard channel, honouring {hash tags}. */
  function calculateSlot(key: string | Buffer): number;
  export default calculateSlot;
}
