/** The dashboard's style: system fonts, light and dark, a table that turns into cards on a narrow screen. */
export const PAGE_CSS = `:root {
  --bg: #f6f7f9; --panel: #fff; --text: #1d232b; --muted: #667085; --line: #e3e6ea; --accent: #2456d6;
  --ok: #16803c; --bad: #c4271d; --warn: #b25e00; --info: #2456d6; --off: #7a828c;
  --ok-bg: #e3f5e9; --bad-bg: #fde7e5; --warn-bg: #fff0db; --info-bg: #e4ebfd; --off-bg: #eceef0;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418; --panel: #1a1f25; --text: #e4e7eb; --muted: #98a2b0; --line: #2c333c; --accent: #7ea2ff;
    --ok: #5fd38a; --bad: #ff7b72; --warn: #f0b158; --info: #7ea2ff; --off: #98a2b0;
    --ok-bg: #163323; --bad-bg: #3d1c1a; --warn-bg: #3b2a12; --info-bg: #1c2a4d; --off-bg: #262c33;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.top { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; padding: 10px 16px; background: var(--panel); border-bottom: 1px solid var(--line); }
h1 { margin: 0; font-size: 18px; }
h2 { margin: 0; font-size: 16px; }
.live { color: var(--muted); font-size: 13px; }
.live::before { content: "\\25CF"; margin-right: 5px; color: var(--off); }
.live.ok::before { color: var(--ok); }
.live.stale::before { color: var(--warn); }
.live.down::before { color: var(--bad); }
#filter { margin-left: auto; min-width: 280px; padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--text); font: inherit; }
main { padding: 16px; max-width: 1400px; margin: 0 auto; }
.listeners { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 16px; }
.listener { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
.listener b { margin-right: 6px; }
.muted, .listener span { color: var(--muted); }
.upstream { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 16px; overflow: hidden; }
.upstream > header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 12px; padding: 10px 12px; border-bottom: 1px solid var(--line); }
.upstream .summary { color: var(--muted); margin-left: auto; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 12px; text-align: right; white-space: nowrap; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tbody tr:last-child td { border-bottom: 0; }
td.addr { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: var(--off-bg); color: var(--off); }
.badge.healthy { background: var(--ok-bg); color: var(--ok); }
.badge.unhealthy, .badge.panic { background: var(--bad-bg); color: var(--bad); }
.badge.ejected { background: var(--warn-bg); color: var(--warn); }
.badge.draining { background: var(--info-bg); color: var(--info); }
.tag { margin-left: 6px; font-size: 11px; color: var(--muted); border: 1px solid var(--line); border-radius: 4px; padding: 0 4px; }
.why { margin-left: 6px; font-size: 12px; color: var(--muted); }
.warn { color: var(--warn); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.actions { display: flex; gap: 6px; justify-content: flex-end; }
button { font: inherit; font-size: 12px; padding: 3px 10px; border-radius: 6px; border: 1px solid var(--line); background: var(--panel); color: var(--text); cursor: pointer; }
button:hover { border-color: var(--accent); }
button:disabled { opacity: .5; cursor: progress; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
.stale-data .upstream { opacity: .6; }
.note { color: var(--muted); }
.toast { position: fixed; right: 16px; bottom: 16px; max-width: min(480px, calc(100vw - 32px)); margin: 0; padding: 10px 14px; border-radius: 8px; background: var(--text); color: var(--bg); box-shadow: 0 4px 16px rgba(0,0,0,.2); cursor: pointer; }
.toast.error { background: var(--bad); color: #fff; }
dialog { border: 1px solid var(--line); border-radius: 10px; background: var(--panel); color: var(--text); padding: 16px; width: min(360px, calc(100vw - 32px)); }
dialog::backdrop { background: rgba(0,0,0,.35); }
dialog p { color: var(--muted); }
dialog input { width: 100%; padding: 8px; font: inherit; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--text); }
dialog .buttons { display: flex; justify-content: flex-end; gap: 8px; margin-top: 12px; }
[hidden] { display: none !important; }
@media (max-width: 760px) {
  main { padding: 8px; }
  #filter { margin-left: 0; width: 100%; min-width: 0; }
  .upstream .summary { margin-left: 0; width: 100%; }
  thead { display: none; }
  table, tbody, tr, td { display: block; }
  tr { display: grid; grid-template-columns: 1fr 1fr 1fr; gap: 4px 8px; padding: 8px 12px; border-bottom: 1px solid var(--line); }
  tbody tr:last-child { border-bottom: 0; }
  td { padding: 0; border: 0; text-align: left !important; }
  td::before { content: attr(data-label); display: block; font-size: 11px; color: var(--muted); }
  td.addr, td.state, td.act { grid-column: 1 / -1; }
  td.addr::before, td.state::before, td.act::before { display: none; }
  .actions { justify-content: flex-start; }
  button { padding: 6px 14px; }
}
`;
