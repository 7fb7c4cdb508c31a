/**
 * What the collectives of one communicator achieved: per kind the calls, the logical payload,
 * the bus bytes and the time, and the busy time (the union of the intervals in which at least one
 * collective was in flight), counted where the collectives run (ProcessGroup), as nccl-tests
 * defines its figures:
 *
 *   bytes   = elements x 4 of the full buffer (fp32 values, whatever the wire codec): the reduced
 *             buffer for allReduce and reduceScatter, the gathered one for allGather, the buffer's
 *             bytes for broadcast
 *   busBytes = bytes x factor, factor = 2(n-1)/n for allReduce, (n-1)/n for reduceScatter and
 *             allGather, 1 for broadcast (n = group size): what each rank's link carries with a
 *             bandwidth-optimal algorithm, so busBytes / time compares across group sizes
 *
 * A group of one rank moves nothing: its calls are counted with zero bytes and no time.
 *
 * A call's time runs from the call to its completion, so it includes waiting for the last member
 * to arrive (as nccl-tests' and the PyTorch profiler's do), and, since compute is synchronous, any
 * compute the main thread did while the collective was in flight (a ZeRO-3 prefetched gather).
 * Several collectives may be in flight at once (groups, prefetches): each call's time counts in
 * its kind's `timeMs`, but `busyMs` counts every instant once.
 *
 * Not counted: send/recv (a recv's time is mostly the peer stage's compute, a pipeline bubble,
 * and a send resolves when the socket takes the data, so neither is a transfer time; counting
 * them would make the busy time the pipeline's idle time) and barriers (no payload).
 */
export type TimedCollectiveKind = 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast';

export const TIMED_COLLECTIVE_KINDS: readonly TimedCollectiveKind[] = ['allReduce', 'reduceScatter', 'allGather', 'broadcast'];

/** Cumulative figures of one kind of collective. */
export interface CollectiveKindStats {
  /** Completed calls (groups of one rank included). */
  count: number;
  /** Logical payload: elements x 4 per call (0 for a group of one). */
  bytes: number;
  /** bytes x the kind's bus factor for the call's group size. */
  busBytes: number;
  /** Sum of the calls' durations; overlapping calls each count, so it may exceed busyMs. */
  timeMs: number;
}

/** Cumulative since the communicator was created; subtract two snapshots for an interval. */
export interface CollectiveStatsSnapshot {
  kinds: Record<TimedCollectiveKind, CollectiveKindStats>;
  /** busBytes of every kind. */
  busBytes: number;
  /** Time in which at least one collective was in flight, up to the snapshot (an open interval counts so far). */
  busyMs: number;
  /** Collectives in flight at the snapshot. */
  inFlight: number;
}

/** nccl-tests' bus-bandwidth factor of a collective over n ranks. */
export function busFactor(kind: TimedCollectiveKind, n: number): number {
  if (n <= 1) return 0;
  if (kind === 'allReduce') return (2 * (n - 1)) / n;
  if (kind === 'broadcast') return 1;
  return (n - 1) / n;
}

/**
 * Bus bandwidth in GB/s (1e9 bytes/s) of the interval between two snapshots: bus bytes over busy
 * time. Undefined when no collective was in flight during it.
 */
export function busBandwidthGBs(before: CollectiveStatsSnapshot, after: CollectiveStatsSnapshot): number | undefined {
  const busyMs = after.busyMs - before.busyMs;
  if (!(busyMs > 0)) return undefined;
  return (after.busBytes - before.busBytes) / (busyMs * 1e6);
}

/**
 * The accumulator a Communicator owns and its process groups share. A collective calls
 * `begin()` when it starts and `end(...)` when it completes, or `abandon()` when it fails (its
 * interval still counts as busy, its bytes do not). Two clock reads per call and no allocation.
 */
export class CollectiveStats {
  private readonly kinds: Record<TimedCollectiveKind, CollectiveKindStats> = {
    allReduce: emptyKind(), reduceScatter: emptyKind(), allGather: emptyKind(), broadcast: emptyKind(),
  };
  private busBytes = 0;
  /** Busy time of the intervals already closed. */
  private busyMs = 0;
  private inFlight = 0;
  /** When the current busy interval opened (meaningful while inFlight > 0). */
  private busySince = 0;

  /** `clock`: milliseconds, monotonic (tests pass their own). */
  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** A collective starts; returns its start time, to pass to end() or abandon(). */
  begin(): number {
    const now = this.clock();
    if (this.inFlight++ === 0) this.busySince = now;
    return now;
  }

  /**
   * The collective begun at `startedAt` completed in a group of `groupSize` ranks; `bytes`: its
   * logical payload (elements x 4 for the fp32 collectives).
   */
  end(kind: TimedCollectiveKind, bytes: number, groupSize: number, startedAt: number): void {
    const now = this.close();
    const k = this.kinds[kind];
    const bus = bytes * busFactor(kind, groupSize);
    k.count += 1;
    k.bytes += bytes;
    k.busBytes += bus;
    k.timeMs += now - startedAt;
    this.busBytes += bus;
  }

  /** A collective begun earlier failed: its interval was busy, nothing was delivered. */
  abandon(): void {
    this.close();
  }

  /** A call in a group of one rank: counted, with no bytes and no time. */
  countTrivial(kind: TimedCollectiveKind): void {
    this.kinds[kind].count += 1;
  }

  snapshot(): CollectiveStatsSnapshot {
    const open = this.inFlight > 0 ? this.clock() - this.busySince : 0;
    const kinds = {} as Record<TimedCollectiveKind, CollectiveKindStats>;
    for (const kind of TIMED_COLLECTIVE_KINDS) kinds[kind] = { ...this.kinds[kind] };
    return { kinds, busBytes: this.busBytes, busyMs: this.busyMs + open, inFlight: this.inFlight };
  }

  /** Ends one call's interval; closes the busy interval when it was the last in flight. */
  private close(): number {
    const now = this.clock();
    if (this.inFlight > 0 && --this.inFlight === 0) this.busyMs += now - this.busySince;
    return now;
  }
}

function emptyKind(): CollectiveKindStats {
  return { count: 0, bytes: 0, busBytes: 0, timeMs: 0 };
}
