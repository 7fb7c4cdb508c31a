// Surviving failures and running on many hosts: restarts as rendezvous rounds, elastic
// resume, per-host agents and the hostfile launch.
export { RestartSupervisor, EXIT_OK, EXIT_FAILED, EXIT_NOT_RESTARTABLE, type RestartSummary, type RoundLauncher, type RestartSupervisorOptions } from './restart-supervisor.js';
export { decideRestart, isRestartable, lostSteps, type RestartDecision, type RoundRecord } from './restart-policy.js';
export { chooseResumePoint, type ResumePoint } from './resume-point.js';
export { elasticRendezvous, resizeJob, type Batching, type ElasticRendezvous } from './elastic.js';
export { LocalWorkers, type LocalWorkersOptions } from './local-workers.js';
export { WorkerGroup, type WorkerGroupOptions, type WorkerExit } from './worker-group.js';
