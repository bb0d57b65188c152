/**
 * The dashboard's script, plain ES2020 run as is by the browser (no build step, no library).
 *
 * It polls /status once a second (one request at a time; paused while the tab is hidden) and updates the page in
 * place: one section per upstream and one row per server, created once and kept by key, each cell written only when
 * its text changes, so a second with nothing new touches no node and 200 servers cost a few hundred string
 * comparisons. The drain / disable buttons POST to the admin's /servers/* routes from the page's own origin (which
 * the admin's cross-site checks let through); on a 401 the page asks for the admin token and sends it as
 * `Authorization: Bearer`, keeping it for the tab's session only. Every number shown is one /status gives.
 * Each update is timed with `performance.measure('ballast:render')`, which the browser test reads.
 *
 * Kept inside a TypeScript string so `tsc` ships it in dist/ with the rest; it must contain no backtick and no
 * dollar-brace.
 */
export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var POLL_MS = 1000;
  var TOKEN_KEY = 'ballast-admin-token';
  var $ = function (id) { return document.getElementById(id); };
  var upstreamsEl = $('upstreams'), listenersEl = $('listeners'), liveEl = $('live'), noteEl = $('note');
  var filterEl = $('filter'), toastEl = $('toast'), dialog = $('token-dialog'), tokenEl = $('token');
  var sections = new Map();
  var listenerKey = '';
  var lastOk = 0, failure = '', timer = 0, polling = false, again = false, toastTimer = 0;
  var token = null;
  try { token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // Write only what changed: a DOM write costs a style recalculation, a string comparison does not.
  function put(view, key, node, text) {
    if (view.last[key] !== text) { view.last[key] = text; node.textContent = text; }
  }
  function putClass(view, key, node, cls) {
    if (view.last[key] !== cls) { view.last[key] = cls; node.className = cls; }
  }
  // Setting an attribute to the value it has still counts as a change (a mutation record, a style check).
  function hide(node, hidden) {
    if (node.hidden !== hidden) node.hidden = hidden;
  }
  function putData(node, key, value) {
    if (node.dataset[key] !== value) node.dataset[key] = value;
  }
  function rate(x) {
    if (x === 0) return '0';
    if (x >= 100) return String(Math.round(x));
    if (x >= 10) return x.toFixed(1);
    return x.toFixed(2);
  }
  function ms(x) {
    if (x === null || x === undefined) return '–';
    if (x >= 1000) return (x / 1000).toFixed(x >= 10000 ? 0 : 1) + ' s';
    if (x >= 100) return Math.round(x) + ' ms';
    if (x >= 10) return x.toFixed(1) + ' ms';
    return x.toFixed(2) + ' ms';
  }
  function percent(r) {
    if (r === 0) return '0%';
    var p = r * 100;
    return (p >= 10 ? p.toFixed(0) : p >= 1 ? p.toFixed(1) : p.toFixed(2)) + '%';
  }
  function errorClass(m) {
    if (!m || m.requests === 0) return '';
    return m.error_rate >= 0.05 ? 'bad' : m.error_rate >= 0.01 ? 'warn' : '';
  }
  function seconds(msLeft) {
    var s = Math.ceil(msLeft / 1000);
    return s >= 120 ? Math.floor(s / 60) + ' min ' + (s % 60) + ' s' : s + ' s';
  }

  // ---- listeners ----
  function renderListeners(list) {
    if (!list) { hide(listenersEl, true); return; }
    var key = JSON.stringify(list);
    if (key === listenerKey) return;
    listenerKey = key;
    listenersEl.replaceChildren.apply(listenersEl, list.map(function (l) {
      var card = el('div', 'listener');
      card.append(el('b', '', l.name), el('span', '', l.protocol + ' · ' + l.listen + ' → ' + l.upstreams.join(', ') + ' · ' +
        l.active_connections + (l.active_connections === 1 ? ' connection' : ' connections')));
      return card;
    }));
    hide(listenersEl, list.length === 0);
  }

  // ---- upstreams ----
  function sectionFor(u) {
    var s = sections.get(u.name);
    if (s) return s;
    var root = el('section', 'upstream');
    root.dataset.upstream = u.name;
    var head = el('header');
    var title = el('h2', '', u.name);
    var balance = el('span', 'muted');
    var panic = el('span', 'badge panic', 'panic');
    panic.title = 'Too few servers are available (panic_threshold): traffic goes to all of them, health ignored';
    var summary = el('span', 'summary');
    head.append(title, balance, panic, summary);
    var table = el('table');
    var thead = el('thead');
    var tr = el('tr');
    ['Server', 'State', 'Weight', 'In flight', 'req/s', 'p50', 'p99', 'Errors', 'Ejections', ''].forEach(function (h) {
      tr.append(el('th', '', h));
    });
    thead.append(tr);
    var tbody = el('tbody');
    table.append(thead, tbody);
    root.append(head, table);
    s = { name: u.name, root: root, balance: balance, panic: panic, summary: summary, tbody: tbody, rows: new Map(), last: {}, seen: 0 };
    sections.set(u.name, s);
    return s;
  }

  var COLUMNS = [['addr', 'Server'], ['state', 'State'], ['weight', 'Weight'], ['inflight', 'In flight'], ['rps', 'req/s'],
    ['p50', 'p50'], ['p99', 'p99'], ['errors', 'Errors'], ['ejections', 'Ejections'], ['act', '']];

  function rowFor(s, server) {
    var r = s.rows.get(server.address);
    if (r) return r;
    var tr = el('tr');
    tr.dataset.server = server.address;
    var cells = {};
    COLUMNS.forEach(function (c) {
      var td = el('td', c[0]);
      td.dataset.label = c[1];
      cells[c[0]] = td;
      tr.append(td);
    });
    var addr = el('span', '', server.address);
    var backup = el('span', 'tag', 'backup');
    cells.addr.append(addr, backup);
    var badge = el('span', 'badge');
    var why = el('span', 'why');
    cells.state.append(badge, why);
    var actions = el('div', 'actions');
    var drain = el('button');
    var disable = el('button');
    drain.type = disable.type = 'button';
    actions.append(drain, disable);
    cells.act.append(actions);
    r = { tr: tr, cells: cells, backup: backup, badge: badge, why: why, drain: drain, disable: disable, last: {}, text: '', seen: 0 };
    s.rows.set(server.address, r);
    return r;
  }

  function renderRow(s, r, server) {
    var h = server.health || {};
    var c = r.cells;
    var state = server.state;
    hide(r.backup, !server.backup);
    putClass(r, 'badge', r.badge, 'badge ' + state);
    put(r, 'state', r.badge, state === 'ejected' && h.ejected_for_ms > 0 ? 'ejected · ' + seconds(h.ejected_for_ms) : state);
    // A flag the state does not show: a drained or disabled server that also fails its checks, say.
    var also = [];
    if (h.active_check_failed && state !== 'unhealthy') also.push('failing checks');
    if (h.ejected_for_ms > 0 && state !== 'ejected') also.push('ejected ' + seconds(h.ejected_for_ms));
    if (h.draining && h.disabled) also.push('draining');
    put(r, 'why', r.why, also.join(', '));
    var w = server.effective_weight < server.weight ? server.effective_weight + ' / ' + server.weight : String(server.weight);
    put(r, 'weight', c.weight, w);
    if (r.last.wtitle !== (w !== String(server.weight))) {
      r.last.wtitle = w !== String(server.weight);
      c.weight.title = r.last.wtitle ? 'effective weight / configured weight (slow start)' : '';
    }
    put(r, 'inflight', c.inflight, String(server.active_requests));
    var m = server.last_minute;
    put(r, 'rps', c.rps, m ? rate(m.requests_per_second) : '–');
    put(r, 'p50', c.p50, m ? ms(m.p50_ms) : '–');
    put(r, 'p99', c.p99, m ? ms(m.p99_ms) : '–');
    put(r, 'errors', c.errors, m ? (m.requests === 0 ? '–' : percent(m.error_rate)) : '–');
    putClass(r, 'errcls', c.errors, 'errors ' + errorClass(m));
    if (m && r.last.errtitle !== m.errors + '/' + m.requests) {
      r.last.errtitle = m.errors + '/' + m.requests;
      c.errors.title = m.errors + ' of ' + m.requests + ' requests in the last minute';
    }
    put(r, 'ejections', c.ejections, server.ejections === null || server.ejections === undefined ? '–' : String(server.ejections));
    put(r, 'drain', r.drain, h.draining ? 'Undrain' : 'Drain');
    put(r, 'disable', r.disable, h.disabled ? 'Enable' : 'Disable');
    putData(r.drain, 'action', h.draining ? 'undrain' : 'drain');
    putData(r.disable, 'action', h.disabled ? 'enable' : 'disable');
    r.text = (s.name + ' ' + server.address + ' ' + state + (server.backup ? ' backup' : '')).toLowerCase();
  }

  function renderUpstream(u, generation) {
    var s = sectionFor(u);
    s.seen = generation;
    put(s, 'balance', s.balance, u.balance);
    hide(s.panic, !u.panic);
    var available = 0;
    var prev = null;
    var order = true;
    for (var i = 0; i < u.servers.length; i++) {
      var server = u.servers[i];
      if (server.state === 'healthy') available++;
      var r = rowFor(s, server);
      r.seen = generation;
      renderRow(s, r, server);
      // Rows stay where they are unless the config's order changed (a reload): then they are moved, not rebuilt.
      var expected = prev ? prev.tr.nextSibling : s.tbody.firstChild;
      if (expected !== r.tr) { order = false; s.tbody.insertBefore(r.tr, expected); }
      prev = r;
    }
    if (!order || s.rows.size !== u.servers.length) {
      s.rows.forEach(function (r, address) {
        if (r.seen !== generation) { r.tr.remove(); s.rows.delete(address); }
      });
    }
    var m = u.last_minute;
    var parts = [available + '/' + u.servers.length + ' healthy'];
    if (m && m.requests === 0) parts.push('no requests in the last minute');
    else if (m) parts.push(rate(m.requests_per_second) + ' req/s', percent(m.error_rate) + ' errors', 'p50 ' + ms(m.p50_ms), 'p99 ' + ms(m.p99_ms));
    put(s, 'summary', s.summary, parts.join(' · '));
    return s;
  }

  var generation = 0;
  function render(doc) {
    var started = performance.now();
    generation++;
    renderListeners(doc.listeners);
    var prev = null;
    doc.upstreams.forEach(function (u) {
      var s = renderUpstream(u, generation);
      var expected = prev ? prev.root.nextSibling : upstreamsEl.firstChild;
      if (expected !== s.root) upstreamsEl.insertBefore(s.root, expected);
      prev = s;
    });
    sections.forEach(function (s, name) {
      if (s.seen !== generation) { s.root.remove(); sections.delete(name); }
    });
    var note = doc.upstreams.length === 0 ? 'No upstreams are configured.' :
      doc.upstreams[0].last_minute === null ? 'No per-server req/s, latency or errors here: this process does not carry the traffic ' +
        '(a cluster primary; its workers do). /metrics sums their counters.' : '';
    if (noteEl.textContent !== note) { noteEl.textContent = note; hide(noteEl, note === ''); }
    applyFilter(false);
    performance.measure('ballast:render', { start: started });
    performance.clearMeasures('ballast:render');
  }

  // ---- filter ----
  var filterText = '';
  function applyFilter(changed) {
    var q = filterEl.value.trim().toLowerCase();
    if (!changed && q === '' && filterText === '') return;
    filterText = q;
    sections.forEach(function (s) {
      var any = false;
      s.rows.forEach(function (r) {
        var show = q === '' || r.text.indexOf(q) !== -1;
        hide(r.tr, !show);
        if (show) any = true;
      });
      hide(s.root, !any && s.rows.size > 0);
    });
  }
  filterEl.addEventListener('input', function () { applyFilter(true); });
  toastEl.addEventListener('click', function () { toastEl.hidden = true; });

  // ---- polling ----
  function setLive() {
    var age = lastOk === 0 ? Infinity : (Date.now() - lastOk) / 1000;
    var cls, text;
    if (failure) { cls = 'live down'; text = failure + (lastOk ? ' · last update ' + Math.round(age) + ' s ago' : ''); }
    else if (age > 3) { cls = 'live stale'; text = lastOk ? 'last update ' + Math.round(age) + ' s ago' : 'connecting…'; }
    else { cls = 'live ok'; text = 'live'; }
    if (liveEl.className !== cls) liveEl.className = cls;
    if (liveEl.textContent !== text) liveEl.textContent = text;
    var stale = age > 3;
    if (document.body.classList.contains('stale-data') !== stale) document.body.classList.toggle('stale-data', stale);
  }

  function poll() {
    clearTimeout(timer);
    if (polling) { again = true; return; }
    if (document.hidden) { timer = setTimeout(poll, POLL_MS); return; }
    polling = true;
    fetch('/status', { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('the admin answered ' + res.status);
        return res.json();
      })
      .then(function (doc) { render(doc); lastOk = Date.now(); failure = ''; },
        function (err) { failure = err instanceof TypeError ? 'the admin is unreachable' : String(err.message || err); })
      .then(function () {
        polling = false;
        setLive();
        if (again) { again = false; poll(); } else timer = setTimeout(poll, POLL_MS);
      });
  }
  document.addEventListener('visibilitychange', function () { if (!document.hidden) poll(); });
  setInterval(setLive, 1000);

  // ---- actions ----
  function toast(text, error) {
    toastEl.textContent = text;
    toastEl.className = error ? 'toast error' : 'toast';
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.hidden = true; }, error ? 8000 : 4000);
  }

  function askToken(why) {
    return new Promise(function (resolve) {
      $('token-why').textContent = why;
      tokenEl.value = '';
      dialog.returnValue = '';
      dialog.addEventListener('close', function () {
        resolve(dialog.returnValue === 'ok' && tokenEl.value !== '' ? tokenEl.value : null);
        tokenEl.value = '';
      }, { once: true });
      dialog.showModal();
    });
  }

  function send(action, upstream, server) {
    var headers = {};
    if (token) headers.authorization = 'Bearer ' + token;
    var query = new URLSearchParams({ server: server, upstream: upstream });
    return fetch('/servers/' + action + '?' + query, { method: 'POST', headers: headers, cache: 'no-store' }).then(function (res) {
      if (res.status !== 401) return res.json().catch(function () { return {}; }).then(function (body) { return { res: res, body: body }; });
      return askToken(token ? 'The admin refused that token. Enter the admin token (admin.token):' :
        'Changing a server needs the admin token (admin.token).').then(function (given) {
        if (given === null) return null;
        token = given;
        try { sessionStorage.setItem(TOKEN_KEY, given); } catch (e) { /* storage off: keep it for this page only */ }
        return send(action, upstream, server);
      });
    });
  }

  upstreamsEl.addEventListener('click', function (event) {
    var button = event.target.closest('button[data-action]');
    if (!button) return;
    var action = button.dataset.action;
    var server = button.closest('tr').dataset.server;
    var upstream = button.closest('section').dataset.upstream;
    button.disabled = true;
    send(action, upstream, server).then(function (answer) {
      if (answer === null) return;
      if (!answer.res.ok) { toast(action + ' ' + server + ': ' + (answer.body.error || 'the admin answered ' + answer.res.status), true); return; }
      var done = (answer.body.servers || [])[0];
      toast(upstream + ' ' + server + ': ' + (done ? done.state : action));
      poll();
    }, function () {
      toast(action + ' ' + server + ': the admin is unreachable', true);
    }).then(function () { button.disabled = false; });
  });

  poll();
})();
`;
