import type { Channel } from '@trainer/comm';
import type { Coordinator } from '../coordinator.js';
import type { Logger } from '../logging.js';
import { agentMessage, AgentHelloSchema, FromAgentSchema, type AgentHello, type ToAgent } from './agent-protocol.js';
import type { RoundLauncher } from './restart-supervisor.js';

/**
 * The coordinator's side of the per-host agents: who is connected, which round each was told
 * to start, and the round launcher the restart supervisor drives (start: every agent starts its
 * workers; stop: every agent stops them and says so). A worker exit an agent reports becomes a
 * failure of that worker's rank (or of the rendezvous, if it died before joining).
 */
interface AgentConnection {
  hello: AgentHello;
  channel: Channel;
  /** The last round this agent was told to start. */
  started?: number;
  stopped?: number;
  lastHeard: number;
}

export interface AgentPoolOptions {
  logger: Logger;
  heartbeatIntervalMs?: number;
  /** How long stopRound waits for every agent to report its workers gone (5 s; an unreachable host never does). */
  stopTimeoutMs?: number;
}

export class AgentPool implements RoundLauncher {
  private readonly agents: AgentConnection[] = [];
  private readonly beat: NodeJS.Timeout;
  private readonly changed = new Set<() => void>();

  constructor(private readonly coordinator: Coordinator, private readonly o: AgentPoolOptions) {
    coordinator.on('agent', (ch: Channel) => this.admit(ch));
    this.beat = setInterval(() => {
      for (const a of this.agents) this.send(a, { type: 'heartbeat', t: Date.now() });
    }, o.heartbeatIntervalMs ?? 1000);
    this.beat.unref();
  }

  /** Host names of the connected agents. */
  get hosts(): string[] {
    return this.agents.map((a) => a.hello.host);
  }

  /** Host names of the agents heard from in the last `ms` (a host cut off keeps its connection but falls silent). */
  responsiveHosts(ms: number): string[] {
    return this.agents.filter((a) => Date.now() - a.lastHeard <= ms).map((a) => a.hello.host);
  }

  /** Resolves when `count` agents are connected, or after `ms` (then the caller names the missing ones). */
  async waitForAgents(count: number, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.agents.length < count && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.changed.delete(wake);
          resolve();
        };
        this.changed.add(wake);
        setTimeout(wake, Math.max(0, deadline - Date.now())).unref();
      });
    }
  }

  startRound(round: number): void {
    for (const a of this.agents) this.startAgent(a, round);
  }

  async stopRound(): Promise<void> {
    const round = this.coordinator.round;
    const live = this.agents.filter((a) => a.started === round);
    for (const a of live) this.send(a, { type: 'stop', round });
    const deadline = Date.now() + (this.o.stopTimeoutMs ?? 5000);
    while (live.some((a) => a.stopped !== round && this.agents.includes(a)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const late = live.filter((a) => a.stopped !== round && this.agents.includes(a)).map((a) => a.hello.host);
    if (late.length) this.o.logger.warn({ hosts: late }, `no word from the agent(s) on ${late.join(', ')} that their workers stopped; going on without them`);
  }

  /** The job is over: every agent lets its workers finish, then exits. */
  exitAll(reason: string): void {
    for (const a of this.agents) this.send(a, { type: 'exit', reason });
  }

  close(): void {
    clearInterval(this.beat);
    for (const a of this.agents) a.channel.close('coordinator closing');
  }

  private admit(ch: Channel): void {
    const hello = AgentHelloSchema.safeParse(ch.remoteHello);
    if (!hello.success) {
      this.o.logger.warn({ remote: ch.remoteAddress }, `dropped an agent connection with an invalid hello: ${hello.error.message}`);
      return ch.close('invalid hello');
    }
    const agent: AgentConnection = { hello: hello.data, channel: ch, lastHeard: Date.now() };
    this.agents.push(agent);
    this.o.logger.info({ host: agent.hello.host, pid: agent.hello.pid, slots: agent.hello.slots }, `agent on ${agent.hello.host} connected (${this.agents.length} agent(s))`);
    ch.on('message', (header: Record<string, unknown>) => this.onMessage(agent, header));
    ch.on('close', () => {
      const i = this.agents.indexOf(agent);
      if (i >= 0) this.agents.splice(i, 1);
      this.o.logger.warn({ host: agent.hello.host }, `the agent on ${agent.hello.host} disconnected`);
      for (const wake of [...this.changed]) wake();
    });
    for (const wake of [...this.changed]) wake();
    // A new agent joins the round under way if it is still gathering workers.
    if (!this.coordinator.isOver) this.startAgent(agent, this.coordinator.round);
  }

  private startAgent(a: AgentConnection, round: number): void {
    if (a.started === round) return;
    a.started = round;
    this.send(a, { type: 'start', round });
  }

  private onMessage(a: AgentConnection, header: Record<string, unknown>): void {
    a.lastHeard = Date.now();
    const parsed = FromAgentSchema.safeParse(header);
    if (!parsed.success) {
      this.o.logger.warn({ host: a.hello.host }, `dropped the agent on ${a.hello.host}: invalid message: ${parsed.error.message}`);
      return a.channel.close('invalid message');
    }
    const m = parsed.data;
    if (m.type === 'worker-exited') {
      this.coordinator.processExitedOn(a.hello.host, m.pid, m.localRank, m.code, m.signal as NodeJS.Signals | null, m.round);
    } else if (m.type === 'stopped') {
      a.stopped = m.round;
    }
  }

  private send(a: AgentConnection, m: ToAgent): void {
    try {
      a.channel.send(agentMessage(m));
    } catch {
      // closed: its 'close' event removes it
    }
  }
}
