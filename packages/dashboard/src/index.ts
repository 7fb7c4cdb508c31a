export { Dashboard, DEFAULT_KEEPALIVE_MS, DEFAULT_MAX_DASHBOARD_CLIENTS, type DashboardOptions } from './dashboard-server.js';
export { deriveDashboardKey, DASHBOARD_COOKIE, DASHBOARD_KEY_LABEL } from './dashboard-auth.js';
export { renderPrometheus, PROMETHEUS_CONTENT_TYPE } from './prometheus.js';
export { buildRunState, reportHtml } from './report.js';
export {
  RunState, MAX_STEP_POINTS, RUN_STATE_FORMAT, RUN_STATE_VERSION,
  type Layout, type MetricValue, type RankFigures, type RankPlacement, type RunEvent, type RunInfo, type RunPatch, type RunStateJSON, type RunStatus, type StepPoint,
} from './view/run-state.js';
