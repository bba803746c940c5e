// The SAE console: runs, one run (charts from the controller's progress history, events,
// checkpoints, workers), workers, a run's feature dashboards (console_features.js). Reads the controller's /api (services/controller/console/
// console_routes.h) every 2 seconds; no framework, uPlot for the charts.
'use strict';

(function () {
  var POLL_MS = 2000;
  var STATES = ['PENDING', 'RUNNING', 'RESTARTING', 'SUCCEEDED', 'FAILED', 'STOPPED'];
  var ACTIVE = { PENDING: true, RUNNING: true, RESTARTING: true };
  var COLORS = ['#3b6fd8', '#d64545', '#1f9d55', '#d98c1a', '#8e44ad', '#16a2b8', '#6e6e86'];

  var main = document.getElementById('main');
  var timer = null;
  var view = null;         // the current page's state
  var runsFilter = {};     // states shown on the runs page (none: all)

  // ---- helpers ----

  // Formatting (console_format.js).
  var F = SaeFormat;
  var CHARTS = F.RUN_CHARTS;  // the run page's charts and the history columns they draw
  var num = F.num, esc = F.esc, stateName = F.stateName, typeName = F.typeName;
  var roleName = F.roleName, fmt = F.fmt, si = F.si, bytes = F.bytes, duration = F.duration;
  var tick = F.tick, time = F.time, plural = F.plural, badge = F.badge, bar = F.bar;
  var progressOf = F.progressOf, eventX = F.eventX, markerPlugin = F.markerPlugin;
  function markers(columns, xKey) { return F.chartMarkers(view.events, columns, xKey); }
  function evalChartData(xKey, columns) { return F.evalChartData(view.events, xKey, columns); }

  // Eval results, found generically (console_format.js).
  var evalNumbers = F.evalNumbers, ceLossScore = F.ceLossScore, isEval = F.isEvalEvent;

  function showUplotNotice() {
    var notice = document.getElementById('notice');
    notice.hidden = false;
    notice.innerHTML = 'Charts need uPlot, which this controller was built without: run <code>scripts/fetch-assets.sh</code>, ' +
      'then build <code>sae-controller</code> again.';
  }

  function api(path, options) {
    return fetch(path, Object.assign({ credentials: 'same-origin', cache: 'no-store' }, options || {}))
      .then(function (response) {
        if (response.status === 401) {
          location.href = '/login';
          throw new Error('the controller requires its token');
        }
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
          return body;
        });
      });
  }

  function setLive(ok) {
    var live = document.getElementById('live');
    live.className = ok ? 'live' : 'live stale';
    live.textContent = ok ? 'live' : 'controller not answering';
  }

  function schedule(fn) {
    clearTimeout(timer);
    timer = setTimeout(fn, POLL_MS);
  }

  // ---- runs page ----

  function showRuns() {
    view = { page: 'runs' };
    main.innerHTML =
      '<h1>Runs</h1><div class="filters" id="filters"></div>' +
      '<div id="runs-table"><p class="muted">Loading…</p></div>';
    refreshRuns();
  }

  function renderFilters(runs) {
    var counts = {};
    runs.forEach(function (r) { var s = stateName(r.state); counts[s] = (counts[s] || 0) + 1; });
    var any = Object.keys(runsFilter).length > 0;
    var html = '<button data-state="" class="' + (any ? '' : 'on') + '">All (' + runs.length + ')</button>';
    STATES.forEach(function (s) {
      html += '<button data-state="' + s + '" class="' + (runsFilter[s] ? 'on' : '') + '">' +
        s.charAt(0) + s.slice(1).toLowerCase() + ' (' + (counts[s] || 0) + ')</button>';
    });
    var box = document.getElementById('filters');
    box.innerHTML = html;
    Array.prototype.forEach.call(box.querySelectorAll('button'), function (b) {
      b.addEventListener('click', function () {
        var s = b.dataset.state;
        if (!s) runsFilter = {};
        else if (runsFilter[s]) delete runsFilter[s];
        else runsFilter[s] = true;
        refreshRuns();
      });
    });
  }

  function refreshRuns() {
    var current = view;
    api('/api/runs').then(function (data) {
      if (view !== current) return;
      setLive(true);
      renderFilters(data.runs);
      var any = Object.keys(runsFilter).length > 0;
      var runs = data.runs.filter(function (r) { return !any || runsFilter[stateName(r.state)]; });
      var box = document.getElementById('runs-table');
      if (!data.runs.length) {
        box.innerHTML = '<div class="empty-state">No runs yet. Submit one with <code>saectl submit run.yaml</code>.</div>';
      } else if (!runs.length) {
        box.innerHTML = '<div class="empty-state">No run in the chosen states.</div>';
      } else {
        var rows = runs.slice().reverse().map(function (r) {
          var m = r.metrics || {};
          var ce = ceLossScore(r.latest_eval);
          var started = num(r.submit_time_unix_ms);
          return '<tr data-run="' + esc(r.run_id) + '">' +
            '<td><a href="#/run/' + encodeURIComponent(r.run_id) + '">' + esc(r.run_id) + '</a></td>' +
            '<td>' + badge(r.state) + '</td>' +
            '<td>' + bar(progressOf(r)) + '</td>' +
            '<td class="num">' + (progressOf(r) * 100).toFixed(0) + '%</td>' +
            '<td class="num">' + esc(r.step) + ' / ' + esc(r.total_steps) + '</td>' +
            '<td class="num">' + si(m.tokens_per_second) + '</td>' +
            '<td class="num">' + fmt(m.l0, 1) + '</td>' +
            '<td class="num">' + fmt(m.explained_variance) + '</td>' +
            '<td class="num" title="CE-loss score of the latest eval">' + (ce === null ? '-' : fmt(ce)) + '</td>' +
            '<td class="num">' + (started ? duration(data.now_unix_ms - started) : '-') + '</td>' +
            '<td class="wrap muted">' + esc(r.message) + '</td></tr>';
        });
        box.innerHTML = '<table id="runs"><thead><tr><th>Run</th><th>State</th><th>Progress</th><th class="num"></th>' +
          '<th class="num">Step</th><th class="num">Tokens/s</th><th class="num">L0</th>' +
          '<th class="num">Expl. var.</th><th class="num">CE-loss score</th><th class="num">Age</th><th>Reason</th>' +
          '</tr></thead><tbody>' + rows.join('') + '</tbody></table>';
      }
      document.body.dataset.ready = '1';
    }).catch(function (e) {
      setLive(false);
      if (view === current) document.getElementById('runs-table').innerHTML = '<p class="error">' + esc(e.message) + '</p>';
    }).then(function () { if (view === current) schedule(refreshRuns); });
  }

  // ---- workers page ----

  function showWorkers() {
    view = { page: 'workers' };
    main.innerHTML = '<h1>Workers</h1><p class="muted">Registered workers with a live lease.</p><div id="workers-table"></div>';
    refreshWorkers();
  }

  function workersTable(workers, showRun) {
    if (!workers.length) return '<div class="empty-state">No workers.</div>';
    return '<table class="workers"><thead><tr><th>Worker</th><th>Role</th><th>Address</th><th>Host</th>' +
      '<th class="num">PID</th>' + (showRun ? '<th>Run</th>' : '') + '<th class="num">Rank</th>' +
      '<th class="num">Generation</th><th class="num">Last heartbeat</th><th class="num">Registered</th></tr></thead><tbody>' +
      workers.map(function (w) {
        var now = Date.now();
        var heartbeat = num(w.lease_age_ms);
        if (heartbeat === null && num(w.last_heartbeat_unix_ms)) heartbeat = now - num(w.last_heartbeat_unix_ms);
        var registered = num(w.registered_age_ms);
        if (registered === null && num(w.register_time_unix_ms)) registered = now - num(w.register_time_unix_ms);
        var run = w.run_id ? '<a href="#/run/' + encodeURIComponent(w.run_id) + '">' + esc(w.run_id) + '</a>' : '<span class="muted">idle</span>';
        return '<tr><td class="mono">' + esc(w.worker_id) + '</td><td>' + esc(roleName(w.role)) + '</td>' +
          '<td class="mono">' + esc(w.address) + '</td><td>' + esc(w.hostname) + '</td><td class="num">' + esc(w.pid) + '</td>' +
          (showRun ? '<td>' + run + '</td>' : '') +
          '<td class="num">' + (w.run_id ? esc(w.rank) : '-') + '</td><td class="num">' + (w.run_id ? esc(w.generation) : '-') + '</td>' +
          '<td class="num">' + duration(heartbeat) + ' ago</td><td class="num">' + duration(registered) + ' ago</td></tr>';
      }).join('') + '</tbody></table>';
  }

  function refreshWorkers() {
    var current = view;
    api('/api/workers').then(function (data) {
      if (view !== current) return;
      setLive(true);
      document.getElementById('workers-table').innerHTML = workersTable(data.workers, true);
      document.body.dataset.ready = '1';
    }).catch(function (e) {
      setLive(false);
      if (view === current) document.getElementById('workers-table').innerHTML = '<p class="error">' + esc(e.message) + '</p>';
    }).then(function () { if (view === current) schedule(refreshWorkers); });
  }

  // ---- run page ----

  function showRun(runId, sae) {
    view = { page: 'run', runId: runId, sae: sae || '', charts: {}, events: [], lastSequence: 0, history: null, xKey: 'step', configShown: false };
    var chartBoxes = CHARTS.map(function (c) {
      return '<div class="chart" id="chart-' + c.id + '" data-chart="' + c.id + '" data-points="0"><h3>' + esc(c.title) +
        '</h3><div class="plot"><div class="empty">No progress reported yet.</div></div></div>';
    }).join('');
    main.innerHTML =
      '<div class="run-head"><h1 id="run-title">' + esc(runId) + '</h1><span id="run-state"></span><span class="msg" id="run-message"></span></div>' +
      '<div class="progress-line" id="run-progress"></div>' +
      '<div class="stats" id="run-stats"></div>' +
      '<div class="toolbar"><button class="danger" id="stop-run" hidden>Stop run</button></div>' +
      '<h2>Training <span class="muted" style="font-weight:400">— x axis <select id="x-axis"><option value="step">steps</option>' +
      '<option value="tokens">tokens</option></select><span id="sae-choice" hidden> · SAE <select id="sae-select"></select></span></span></h2>' +
      '<div class="charts" id="charts">' + chartBoxes + '</div>' +
      '<p class="legend-note"><span class="restart">┆ red: restart</span> · <span class="ckpt">┆ green: checkpoint</span> · ' +
      '<span id="history-note"></span></p>' +
      '<h2>Evaluations</h2><div id="evals"></div>' +
      '<div class="grid2"><div><h2>Feature density histogram <span class="muted" style="font-weight:400">— latest window</span></h2>' +
      '<div id="density-histogram"><div class="empty-state">No feature-sampling window has ended yet.</div></div></div>' +
      '<div><h2>Feature dashboards</h2><div id="feature-dashboards"></div></div></div>' +
      '<h2>Checkpoints</h2><div id="checkpoints"></div>' +
      '<h2>Workers of the run</h2><div id="run-workers"></div>' +
      '<h2>Events</h2><div class="events" id="events"></div>' +
      '<h2>Config</h2><pre class="yaml" id="config"></pre>';
    document.getElementById('x-axis').addEventListener('change', function (e) {
      view.xKey = e.target.value;
      drawCharts();
    });
    // A run of many SAEs: the charts show one SAE at a time (its name in the page's address).
    document.getElementById('sae-select').addEventListener('change', function (e) {
      location.hash = '#/run/' + encodeURIComponent(runId) + (e.target.value ? '?sae=' + encodeURIComponent(e.target.value) : '');
    });
    document.getElementById('stop-run').addEventListener('click', function () {
      if (!confirm('Stop run ' + runId + '? It checkpoints at the next step and ends STOPPED.')) return;
      var button = document.getElementById('stop-run');
      button.disabled = true;
      api('/api/runs/' + encodeURIComponent(runId) + '/stop', { method: 'POST', headers: { 'X-Sae-Console': '1' } })
        .catch(function (e) { alert('Stop failed: ' + e.message); button.disabled = false; });
    });
    refreshRun();
  }

  function refreshRun() {
    var current = view;
    var id = encodeURIComponent(current.runId);
    Promise.all([
      api('/api/runs/' + id),
      api('/api/runs/' + id + '/events?after=' + current.lastSequence),
    ]).then(function (parts) {
      // The history (up to 2048 points) is fetched again only when rank 0 reported since.
      var key = parts[0].run.step + '|' + parts[0].run.generation + '|' + JSON.stringify(parts[0].run.metrics);
      if (current.history && key === current.historyKey) return parts.concat([current.history]);
      var which = current.sae ? '?sae=' + encodeURIComponent(current.sae) : '';
      return api('/api/runs/' + id + '/history' + which).then(function (history) {
        current.historyKey = key;
        return parts.concat([history]);
      });
    }).then(function (parts) {
      if (view !== current) return;
      setLive(true);
      var data = parts[0];
      current.run = data.run;
      current.history = parts[2];
      parts[1].events.forEach(function (e) { current.events.push(e); });
      current.lastSequence = num(parts[1].last_sequence) || current.lastSequence;
      renderRun(data);
      drawCharts();
      document.body.dataset.ready = '1';
    }).catch(function (e) {
      setLive(false);
      if (view === current) document.getElementById('run-message').innerHTML = '<span class="error">' + esc(e.message) + '</span>';
    }).then(function () { if (view === current) schedule(refreshRun); });
  }

  function renderRun(data) {
    var run = data.run;
    var m = run.metrics || {};
    (run.saes || []).forEach(function (s) { if (view.sae && s.name === view.sae) m = s.metrics || {}; });
    var state = stateName(run.state);
    document.getElementById('run-title').textContent = run.run_id + (run.name ? ' · ' + run.name : '');
    document.getElementById('run-state').innerHTML = badge(run.state);
    document.getElementById('run-message').textContent = run.message || '';
    var fraction = progressOf(run);
    var remaining = (num(run.total_tokens) || 0) - (num(run.tokens) || 0);
    var rate = num(m.tokens_per_second);
    var eta = ACTIVE[state] && rate > 0 && remaining > 0 ? 'ETA ' + duration(remaining / rate * 1000) : (state === 'SUCCEEDED' ? 'done' : '');
    document.getElementById('run-progress').innerHTML = bar(fraction, true) +
      '<span class="mono">' + (fraction * 100).toFixed(1) + '% · step ' + esc(run.step) + ' / ' + esc(run.total_steps) +
      ' · ' + si(run.tokens) + ' / ' + si(run.total_tokens) + ' tokens</span><span id="eta">' + esc(eta) + '</span>';
    var started = num(run.start_time_unix_ms), ended = num(run.end_time_unix_ms);
    var stats = [
      ['Tokens/s', si(m.tokens_per_second)], ['Loss', fmt(m.overall_loss, 4)], ['L0', fmt(m.l0, 2)],
      ['Explained variance', fmt(m.explained_variance)], ['Dead features', esc(m.dead_features)],
      ['log10 density', fmt(m.mean_log10_feature_sparsity, 2)], ['Learning rate', fmt(m.learning_rate, 6)],
      ['Generation (restarts)', esc(run.generation)], ['Tokens skipped', si(run.tokens_skipped)],
      ['Checkpoints kept', bytes(run.checkpoint_bytes)],
      ['Running for', started ? duration((ended || data.now_unix_ms) - started) : '-'],
      ['Gang', plural(run.activation_servers, 'server') + ' + ' + plural(run.trainers, 'trainer')],
    ];
    document.getElementById('run-stats').innerHTML = stats.map(function (s) {
      return '<div class="stat"><div class="k">' + s[0] + '</div><div class="v">' + s[1] + '</div></div>';
    }).join('');
    document.getElementById('stop-run').hidden = !ACTIVE[state] || run.stop_requested;
    var h = view.history;
    renderSaeChoice(run);
    document.getElementById('history-note').textContent = h ?
      h.points + ' points (the controller keeps at most ' + h.capacity + ' per run, halving the resolution when full)' : '';

    // Checkpoints.
    var ckpts = data.checkpoints || [];
    document.getElementById('checkpoints').innerHTML = !ckpts.length ? '<div class="empty-state">No checkpoints yet.</div>' :
      '<table id="checkpoint-table"><thead><tr><th class="num">Step</th><th class="num">Tokens</th><th class="num">Size</th>' +
      '<th class="num">Generation</th><th>Final</th><th>Created</th><th>SAELens folder</th></tr></thead><tbody>' +
      ckpts.slice().reverse().map(function (c) {
        var href = '/api/runs/' + encodeURIComponent(run.run_id) + '/checkpoints/' + esc(c.step) + '/download';
        return '<tr><td class="num">' + esc(c.step) + '</td><td class="num">' + si(c.tokens) + '</td><td class="num">' +
          bytes(c.total_bytes) + '</td><td class="num">' + esc(c.generation) + '</td><td>' + (c.final ? 'final SAE' : '') +
          '</td><td>' + time(c.created_unix_ms) + '</td><td><a href="' + href + '" download>download .tar</a></td></tr>';
      }).join('') + '</tbody></table>';

    document.getElementById('run-workers').innerHTML = (data.workers || []).length ? workersTable(data.workers, false) :
      '<div class="empty-state">No workers hold this run now' + (ACTIVE[state] ? ' (waiting for a gang).' : ' (it has ended).') + '</div>';

    document.getElementById('feature-dashboards').innerHTML = SaeConsoleFeatures.runBox(run);
    renderDensity(m);
    renderEvals();
    renderEvents();
    if (!view.configShown) {
      document.getElementById('config').textContent = run.config_yaml || '';
      view.configShown = true;
    }
  }

  // The last window's feature densities: one bar per bin of log10 density (features that never
  // fired sit in the leftmost bin).
  // The SAE selector of a run of many SAEs; the page's charts and stats are of view.sae (the
  // first SAE when none is chosen: the run's top-level metrics are its).
  function renderSaeChoice(run) {
    var saes = run.saes || [];
    var box = document.getElementById('sae-choice');
    box.hidden = saes.length === 0;
    if (!saes.length) return;
    var select = document.getElementById('sae-select');
    if (select.options.length !== saes.length) {
      select.innerHTML = saes.map(function (s) { return '<option value="' + esc(s.name) + '">' + esc(s.name) + '</option>'; }).join('');
    }
    select.value = view.sae || saes[0].name;
    document.body.dataset.sae = select.value;
  }

  function renderDensity(m) {
    var bins = SaeFormat.densityBins(m);
    var box = document.getElementById('density-histogram');
    if (!bins) return;
    var most = Math.max.apply(null, bins.map(function (b) { return b.count; })) || 1;
    box.innerHTML = '<div class="density-bars" id="density-bars">' + bins.map(function (b) {
      var title = b.count + ' features with log10 density in [' + b.from + ', ' + b.to + ')' + (b.from === -10 ? ' (never fired)' : '');
      return '<div class="density-bar" data-count="' + b.count + '" title="' + esc(title) + '"><div style="height:' +
        (100 * b.count / most).toFixed(1) + '%"></div></div>';
    }).join('') + '</div><div class="density-axis"><span>-10 (dead)</span><span>-5</span><span>0 (every token)</span></div>' +
      '<p class="muted">log10 of each feature\'s firing frequency over the window; mean ' +
      fmt(m.mean_log10_feature_sparsity, 2) + ', ' + esc(m.features_below_1e5) + ' below 1e-5.</p>';
  }

  function renderEvals() {
    var evals = view.events.filter(isEval);
    var box = document.getElementById('evals');
    if (!evals.length) {
      box.innerHTML = '<div class="empty-state" id="evals-empty">No evaluations yet. Runs with periodic evals record eval events; ' +
        'their scores (CE-loss score, KL, ...) appear here.</div>';
      return;
    }
    var latest = evalNumbers(evals[evals.length - 1]);
    var keys = Object.keys(latest);
    box.innerHTML = '<table id="eval-table"><thead><tr><th>Metric (latest eval, step ' + esc(evals[evals.length - 1].step) +
      ')</th><th class="num">Value</th></tr></thead><tbody>' + keys.map(function (k) {
        return '<tr><td class="mono">' + esc(k) + '</td><td class="num">' + fmt(latest[k], 4) + '</td></tr>';
      }).join('') + '</tbody></table>';
  }

  function renderEvents() {
    var rows = view.events.slice(-500).reverse().map(function (e) {
      var t = typeName(e.type);
      if (t === 'STATE_CHANGED' && stateName(e.state) === 'RESTARTING') t = 'RESTART';
      return '<tr><td class="num">' + esc(e.sequence) + '</td><td>' + time(e.time_unix_ms) + '</td><td><span class="ev-type ' +
        esc(t) + '">' + esc(t) + '</span></td><td class="wrap">' + esc(e.message) + '</td></tr>';
    });
    document.getElementById('events').innerHTML = rows.length ?
      '<table id="event-table"><tbody>' + rows.join('') + '</tbody></table>' : '<div class="empty-state">No events.</div>';
  }

  function drawCharts() {
    var h = view.history;
    if (!h) return;
    var columns = h.columns;
    var xKey = view.xKey;
    var xs = columns[xKey] || [];
    var current = view;
    current.markers = markers(columns, xKey);
    if (typeof uPlot === 'undefined') {
      showUplotNotice();
      CHARTS.forEach(function (c) {
        var box = document.getElementById('chart-' + c.id);
        box.querySelector('.plot').innerHTML = '<div class="empty">No charts without uPlot (see the notice above).</div>';
      });
      return;
    }
    var evalSeries = evalChartData(xKey, columns);
    var charts = CHARTS.concat(evalSeries ? [evalSeries.chart] : []);
    charts.forEach(function (c) {
      var box = document.getElementById('chart-' + c.id);
      if (!box) {
        box = document.createElement('div');
        box.className = 'chart';
        box.id = 'chart-' + c.id;
        box.dataset.chart = c.id;
        box.innerHTML = '<h3>' + esc(c.title) + '</h3><div class="plot"></div>';
        document.getElementById('charts').appendChild(box);
      }
      var names = c.series.filter(function (s) { return c.data || columns[s]; });
      // Loss terms a run never reports (ghost or aux losses of other architectures) stay out.
      if (c.id === 'losses') {
        names = names.filter(function (s) {
          return s === 'overall_loss' || columns[s].some(function (v) { return v !== null && v !== 0; });
        });
      }
      var data = [c.data ? c.data.x : xs].concat(names.map(function (s) { return c.data ? c.data.y[s] : columns[s]; }));
      var points = 0;
      data.slice(1).forEach(function (ys) { ys.forEach(function (v) { if (v !== null && v !== undefined) points++; }); });
      box.dataset.points = String(points);
      // The newest value of the chart's first line, for tests and for a glance in the DOM.
      var first = (data[1] || []).filter(function (v) { return v !== null && v !== undefined; });
      box.dataset.last = first.length ? String(first[first.length - 1]) : '';
      box.dataset.markers = String(c.id === 'evals' ? 0 : current.markers.length);
      box.dataset.restarts = String(c.id === 'evals' ? 0 : current.markers.filter(function (m) { return m.restart; }).length);
      var plot = box.querySelector('.plot');
      if (!data[0].length || !points) {
        if (view.charts[c.id]) { view.charts[c.id].destroy(); delete view.charts[c.id]; }
        plot.innerHTML = '<div class="empty">' + (c.id === 'feature_density' ?
          'No feature-sampling window has ended yet.' : 'No progress reported yet.') + '</div>';
        return;
      }
      var key = names.join(',') + '|' + xKey;
      var chart = view.charts[c.id];
      if (chart && chart.saeKey === key) {
        chart.setData(data);  // redraws, markers included
        return;
      }
      if (chart) chart.destroy();
      plot.innerHTML = '';
      var width = Math.max(300, box.clientWidth - 16);
      chart = new uPlot({
        width: width,
        height: 200,
        scales: { x: { time: false } },
        legend: { show: true },
        cursor: { drag: { x: true, y: false } },
        series: [{ label: xKey }].concat(names.map(function (s, i) {
          return { label: s, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
                   points: { show: data[0].length < 60 },
                   value: function (u, v) { return v === null || v === undefined ? '-' : fmt(v, 4); } };
        })),
        axes: [{ label: xKey, values: function (u, vals) { return vals.map(tick); } },
               { size: 64, values: function (u, vals) { return vals.map(tick); } }],
        plugins: [markerPlugin(function () { return c.id === 'evals' ? [] : current.markers; })],
      }, data, plot);
      chart.saeKey = key;
      view.charts[c.id] = chart;
    });
  }

  // The eval events as a chart of their numbers against the step (null without evals).
  window.addEventListener('resize', function () {
    if (!view || !view.charts) return;
    Object.keys(view.charts).forEach(function (id) {
      var box = document.getElementById('chart-' + id);
      if (box) view.charts[id].setSize({ width: Math.max(300, box.clientWidth - 16), height: 200 });
    });
  });

  // ---- routing ----

  function route() {
    clearTimeout(timer);
    if (view && view.charts) Object.keys(view.charts).forEach(function (id) { view.charts[id].destroy(); });
    document.body.dataset.ready = '0';
    var hash = location.hash.replace(/^#\/?/, '');
    var parts = hash.split('/');
    var page = parts[0] || 'runs';
    document.body.dataset.page = page;
    Array.prototype.forEach.call(document.querySelectorAll('[data-nav]'), function (a) {
      a.className = a.dataset.nav === page || (page === 'run' && a.dataset.nav === 'runs') ? 'active' : '';
    });
    if (page === 'run' && parts[1]) {
      // #/run/ID or #/run/ID?sae=NAME (a run of many SAEs).
      var target = parts.slice(1).join('/'), query = target.indexOf('?');
      var sae = query < 0 ? '' : new URLSearchParams(target.slice(query + 1)).get('sae') || '';
      showRun(decodeURIComponent(query < 0 ? target : target.slice(0, query)), sae);
    }
    else if (page === 'workers') showWorkers();
    else if (page === 'features') { view = { page: page }; SaeConsoleFeatures.show(main, hash); }
    else { document.body.dataset.page = 'runs'; showRuns(); }
  }

  window.addEventListener('hashchange', route);
  api('/api/info').then(function (info) {
    document.getElementById('logout').hidden = !info.auth_required;
    if (!info.uplot) showUplotNotice();
  }).catch(function () {});
  route();
})();
