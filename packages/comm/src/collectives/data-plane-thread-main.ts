/**
 * The thread side of DataPlaneThread (data-plane-thread.ts): a DataPlane and its Communicator
 * running on this thread's own event loop, so collectives read and write their sockets while
 * the owning thread computes. Commands arrive as messages; buffers are SharedArrayBuffers the
 * owner filled, reduced here in place.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { asTrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import type { Communicator } from './communicator.js';
import { DataPlane } from './data-plane.js';
import { shardRange } from './shard.js';
import type { ThreadCommand, ThreadReply, ThreadStartData } from './data-plane-thread.js';

const port = parentPort!;
const start = workerData as ThreadStartData;
const reply = (m: ThreadReply): void => port.postMessage(m);
let plane: DataPlane | undefined;
let comm: Communicator | undefined;

async function onCommand(m: ThreadCommand): Promise<void> {
  switch (m.type) {
    case 'connect': {
      comm = await plane!.connect({ rank: m.rank, world: m.world, peers: m.peers, ...m.options });
      comm.on('peer-lost', () => undefined); // every collective over it fails, naming the peer: the owner hears it there
      reply({ type: 'connected' });
      return;
    }
    case 'collective': {
      const buf = new Float32Array(m.buffer, 0, m.length);
      const group = comm!.worldGroup;
      if (m.kind === 'allReduce') await group.allReduce(buf, { op: m.op, codec: m.codec });
      else if (m.kind === 'reduceScatter') await group.reduceScatter(buf, { op: m.op === 'max' ? 'sum' : m.op, codec: m.codec });
      else {
        const { start, end } = shardRange(m.length, group.size, group.rank);
        buf.set(await group.allGather(buf.slice(start, end), m.length, { codec: m.codec }));
      }
      reply({ type: 'done', id: m.id, stats: comm!.stats });
      return;
    }
    case 'close': {
      await comm?.close();
      await plane?.close();
      reply({ type: 'closed' });
      port.close();
    }
  }
}

port.on('message', (m: ThreadCommand) => {
  onCommand(m).catch((err: unknown) => {
    const error = asTrainerError(err, CommErrorCode.DATA_PLANE_THREAD).toJSON();
    reply(m.type === 'collective' ? { type: 'failed', id: m.id, error } : { type: 'error', error });
  });
});

DataPlane.listen({ token: start.token, host: start.host, port: 0, ...(start.advertiseHost ? { advertiseHost: start.advertiseHost } : {}), ...(start.tls ? { tls: start.tls } : {}), localTransport: 'tcp' })
  .then((p) => {
    plane = p;
    reply({ type: 'listening', address: p.address });
  })
  .catch((err: unknown) => reply({ type: 'error', error: asTrainerError(err, CommErrorCode.DATA_PLANE_THREAD).toJSON() }));
