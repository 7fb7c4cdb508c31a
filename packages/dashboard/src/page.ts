import { escapeHtml } from './view/format.js';
import { renderPanels } from './view/panels.js';
import type { RunState } from './view/run-state.js';

/**
 * The page shell. The content is rendered on the server first (the page shows the run even
 * before its script runs), then /assets/app.js keeps it live. No inline script or style: the
 * Content-Security-Policy allows only this origin's files.
 */
export function pageHtml(state: RunState, now: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trainer: ${escapeHtml(state.info?.model ?? 'run')}</title>
<link rel="stylesheet" href="/assets/style.css">
<script type="module" src="/assets/app.js"></script>
</head>
<body>
<div id="app">${renderPanels(state, now)}</div>
<footer>trainer dashboard | updates: <span id="connection">connecting</span> | <a href="/metrics">/metrics</a></footer>
</body>
</html>
`;
}

export function messagePage(title: string, text: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trainer: ${escapeHtml(title)}</title><link rel="stylesheet" href="/assets/style.css"></head>
<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>
`;
}
