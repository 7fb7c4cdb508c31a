// Surviving failures and running on many hosts: restarts as rendezvous rounds, elastic
// resume, per-host agents and the hostfile launch.
export { RestartSupervisor, EXIT_OK, EXIT_FAILED, EXIT_NOT_RESTARTABLE, type RestartSummary, type RoundLauncher, type RestartSupervisorOptions } from './restart-supervisor.js';
export { decideRestart, isRestartable, lostSteps, type RestartDecision, type RoundRecord } from './restart-policy.js';
export { chooseResumePoint, type ResumePoint } from './resume-point.js';
export { elasticRendezvous, resizeJob, type Batching, type ElasticRendezvous } from './elastic.js';
export { LocalWorkers, type LocalWorkersOptions } from './local-workers.js';
export { WorkerGroup, type WorkerGroupOptions, type WorkerExit } from './worker-group.js';
export { runAgent, type AgentOptions } from './agent.js';
export { AgentPool, type AgentPoolOptions } from './agent-pool.js';
export { AGENT_PROTOCOL_VERSION, AgentHelloSchema, ToAgentSchema, FromAgentSchema, type AgentHello, type ToAgent, type FromAgent } from './agent-protocol.js';
export { parseHostfile, readHostfile, pickHosts, type HostEntry } from './hostfile.js';
export { probeHosts, travellingEnv, shellQuote, remoteCommand, sshArgs, inSlurmAllocation, ENV_FILE, type ProbeResult } from './remote-shell.js';
export { launchOnHosts, type HostLaunchOptions, type HostLaunchResult } from './host-launch.js';
