import type { TlsOptions } from '@trainer/comm';
import type { JobSpec } from './job-spec.js';
import type { Logger } from './logging.js';
import type { DashboardSettings } from './run-dashboard.js';
import type { ElasticRendezvous } from './supervision/elastic.js';

/** What a coordinator is started with (`Coordinator.start`), and the defaults of its limits. */
export interface CoordinatorOptions {
  host: string;
  port: number;
  token: string;
  world: number;
  job: JobSpec;
  /** Bytes every worker receives with its assignment (the tokenizer file). */
  jobPayload?: Uint8Array;
  heartbeatIntervalMs?: number;
  /** A worker silent this long is declared failed (default 10 s; heartbeats come from a thread, so a long step does not silence them). */
  heartbeatTimeoutMs?: number;
  /** How long to wait for all workers to join (torchrun's default is 900 s). */
  rendezvousTimeoutMs?: number;
  /**
   * When a worker reports a failure that points at another rank (a lost peer, a collective
   * timeout), how long to wait for that rank's own failure before blaming it on their word.
   */
  attributionGraceMs?: number;
  logger: Logger;
  /** The live dashboard: on the control port (default), on a port of its own, or off (false). */
  dashboard?: DashboardSettings | false;
  /** Continue with fewer workers when the rendezvous times out short of the world (--min-nodes). */
  elastic?: ElasticRendezvous;
  /** TLS (wss) on the control port: workers and agents must present a certificate of the same CA. */
  tls?: TlsOptions;
}

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
export const DEFAULT_RENDEZVOUS_TIMEOUT_MS = 300_000;
/** How long a closed connection waits for the agent's report of how its worker ended. */
export const EXIT_REPORT_GRACE_MS = 1000;
