import type { Logger } from '../transport/logger.js';
import type { Communicator } from '../collectives/communicator.js';
import { DataPlane, type DataPlaneConnectOptions } from '../collectives/data-plane.js';

/** Test helper: `world` communicators in this process, fully connected over 127.0.0.1. */
export const TEST_TOKEN = 'test-cluster-token-0123456789';

export interface TestWorld {
  comms: Communicator[];
  planes: DataPlane[];
  close(): Promise<void>;
}

export async function makeWorld(world: number, opts: Partial<DataPlaneConnectOptions> & { logger?: (rank: number) => Logger } = {}): Promise<TestWorld> {
  const planes = await Promise.all(Array.from({ length: world }, (_, r) => DataPlane.listen({ token: TEST_TOKEN, logger: opts.logger?.(r) })));
  const peers = planes.map((p, rank) => ({ rank, ...p.address }));
  const comms = await Promise.all(planes.map((p, rank) => p.connect({ timeoutMs: 10_000, ...opts, rank, world, peers })));
  return {
    comms,
    planes,
    close: async () => {
      await Promise.all(comms.map((c) => c.close()));
    },
  };
}
