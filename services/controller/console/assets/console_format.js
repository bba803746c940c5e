// Pure helpers of the console, shared by the page (console.js) and its node test
// (tests/console/console_format_test.js): how values are formatted, where an event stands on a
// chart and how the charts mark events, and how eval results are found in a run's events.
//
// Eval results reach the console generically: any event whose type name contains "EVAL" (and not
// "FAILED") is an eval event, and every number in it (nested objects flattened to "a.b", numbers sent as
// strings, as proto3 JSON sends 64-bit integers, included) is one of its results, except the
// fields every event has.
(function (root) {
  'use strict';

  var EVENT_FIELDS = { run_id: 1, sequence: 1, time_unix_ms: 1, type: 1, generation: 1, state: 1,
                       message: 1, worker: 1, step: 1, tokens: 1, bytes: 1 };

  // A failed evaluation (EVAL_FAILED) carries no results: it is an ordinary event.
  var NESTED_FIELDS = { step: 1, tokens: 1, time_unix_ms: 1 };

  function isEvalEvent(event) {
    return !!event && /EVAL/.test(String(event.type)) && !/FAILED/.test(String(event.type));
  }

  function evalNumbers(event) {
    var out = {};
    function walk(prefix, value) {
      // Inside an event's eval report, its step, tokens and receipt time are not results.
      if (prefix.indexOf('.') >= 0 && NESTED_FIELDS[prefix.slice(prefix.lastIndexOf('.') + 1)]) return;
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        Object.keys(value).forEach(function (k) { walk(prefix ? prefix + '.' + k : k, value[k]); });
      } else if (typeof value === 'number' && isFinite(value)) {
        out[prefix] = value;
      } else if (typeof value === 'string' && value.trim() !== '' && isFinite(Number(value))) {
        out[prefix] = Number(value);
      }
    }
    Object.keys(event || {}).forEach(function (k) { if (!EVENT_FIELDS[k]) walk(k, event[k]); });
    return out;
  }

  // The CE-loss score of an eval event, wherever it sits in it, or null.
  function ceLossScore(event) {
    if (!isEvalEvent(event)) return null;
    var numbers = evalNumbers(event);
    var keys = Object.keys(numbers);
    for (var i = 0; i < keys.length; i++) {
      if (/(^|\.)ce_loss_score$/.test(keys[i])) return numbers[keys[i]];
    }
    return null;
  }

  // A window's feature-density histogram (TrainingMetrics.log10_density_histogram: counts per
  // bin of log10 density, width 0.5 from -10) as [{from, to, count}], or null when absent.
  function densityBins(metrics) {
    var counts = metrics && metrics.log10_density_histogram;
    if (!Array.isArray(counts) || !counts.length) return null;
    return counts.map(function (c, i) {
      return { from: -10 + 0.5 * i, to: -9.5 + 0.5 * i, count: Number(c) || 0 };
    });
  }

  // ---- formatting ----

  function num(v) {
    if (v === null || v === undefined || v === '') return null;
    var n = Number(v);
    return isFinite(n) ? n : null;
  }
  function esc(s) {
    return String(s === undefined || s === null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function stateName(s) { return String(s || '').replace(/^RUN_STATE_/, ''); }
  function typeName(t) { return String(t || '').replace(/^TYPE_/, ''); }
  function roleName(r) { return String(r || '').replace(/^WORKER_ROLE_/, '').toLowerCase().replace('_', ' '); }
  function fmt(v, digits) {
    var n = num(v);
    if (n === null) return '-';
    if (n !== 0 && (Math.abs(n) >= 1e5 || Math.abs(n) < 1e-3)) return n.toExponential(2);
    return n.toFixed(digits === undefined ? 3 : digits);
  }
  function si(v) {
    var n = num(v);
    if (n === null) return '-';
    var units = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(n) >= units[i][0]) return (n / units[i][0]).toFixed(2) + units[i][1];
    }
    return String(Math.round(n));
  }
  function bytes(v) {
    var n = num(v);
    if (n === null) return '-';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }
  function duration(ms) {
    var n = num(ms);
    if (n === null || n < 0) return '-';
    var s = Math.round(n / 1000);
    if (s < 60) return s + 's';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    var h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }
  // An axis tick: short, and never cut off by the axis width.
  function tick(v) {
    if (v === null || v === undefined) return '';
    var a = Math.abs(v);
    if (a === 0) return '0';
    if (a >= 1e4) return si(v);
    if (a < 1e-3) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }
  function time(ms) {
    var n = num(ms);
    return n ? new Date(n).toLocaleString() : '-';
  }
  function plural(n, word) { return esc(n) + ' ' + word + (Number(n) === 1 ? '' : 's'); }
  function badge(state) { var s = stateName(state); return '<span class="badge ' + esc(s) + '">' + esc(s) + '</span>'; }
  function bar(fraction, big) {
    var pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
    return '<div class="bar' + (big ? ' big' : '') + '"><div style="width:' + pct.toFixed(1) + '%"></div></div>';
  }
  function progressOf(run) {
    var total = num(run.total_tokens);
    return total ? (num(run.tokens) || 0) / total : 0;
  }

  // ---- charts ----

  // The step of an event: its own, or that of the last history point received before it.
  function eventX(e, columns, xKey) {
    var step = num(e.step), tokens = num(e.tokens);
    if (xKey === 'step' && step) return step;
    if (xKey === 'tokens' && tokens && typeName(e.type) === 'CHECKPOINT_COMMITTED') return tokens;
    var t = num(e.time_unix_ms), times = columns.time_unix_ms, xs = columns[xKey];
    var x = null;
    for (var i = 0; i < times.length; i++) {
      if (times[i] <= t) x = xs[i]; else break;
    }
    return x;
  }

  // A uPlot plugin that draws a dashed vertical line at each of getMarkers()'s {x, color}.
  function markerPlugin(getMarkers) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.lineWidth = 1.5;
          ctx.setLineDash([4, 4]);
          getMarkers().forEach(function (mk) {
            var x = Math.round(u.valToPos(mk.x, 'x', true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.strokeStyle = mk.color;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          });
          ctx.restore();
        }],
      },
    };
  }

  // The run page's chart markers: restarts (red) and checkpoint commits (green) where the events
  // stand on the x axis (`columns` the run's history, `xKey` 'step' or 'tokens').
  function chartMarkers(events, columns, xKey) {
    var out = [];
    events.forEach(function (e) {
      var t = typeName(e.type);
      var restart = t === 'STATE_CHANGED' && stateName(e.state) === 'RESTARTING';
      if (!restart && t !== 'CHECKPOINT_COMMITTED') return;
      var x = eventX(e, columns, xKey);
      if (x !== null) out.push({ x: x, color: restart ? '#d64545' : '#1f9d55', restart: restart });
    });
    return out;
  }

  // The eval scores chart: every eval event's numbers whose name holds "score", by x; null when
  // there are none.
  function evalChartData(events, xKey, columns) {
    var evals = events.filter(isEvalEvent);
    if (!evals.length) return null;
    var names = {};
    evals.forEach(function (e) { Object.keys(evalNumbers(e)).forEach(function (k) { if (/score/.test(k)) names[k] = true; }); });
    var keys = Object.keys(names);
    if (!keys.length) return null;
    var rows = evals.map(function (e) { return { x: eventX(e, columns, xKey), n: evalNumbers(e) }; })
      .filter(function (r) { return r.x !== null; })
      .sort(function (a, b) { return a.x - b.x; });
    var y = {};
    keys.forEach(function (k) { y[k] = rows.map(function (r) { return k in r.n ? r.n[k] : null; }); });
    return { chart: { id: 'evals', title: 'Eval scores', series: keys, data: { x: rows.map(function (r) { return r.x; }), y: y } } };
  }

  // The charts of the run page: title, and the history columns drawn in it.
  var RUN_CHARTS = [
    { id: 'losses', title: 'Losses', series: ['overall_loss', 'mse_loss', 'ghost_grad_loss', 'aux_loss'] },
    { id: 'l1_loss', title: 'L1 loss (before its coefficient)', series: ['l1_loss'] },
    { id: 'l0', title: 'L0 (active features per token)', series: ['l0'] },
    { id: 'explained_variance', title: 'Explained variance', series: ['explained_variance'] },
    { id: 'dead_features', title: 'Dead features', series: ['dead_features'] },
    { id: 'feature_density', title: 'Mean log10 feature density (per window)', series: ['mean_log10_feature_sparsity'] },
    { id: 'learning_rate', title: 'Learning rate', series: ['learning_rate'] },
    { id: 'tokens_per_second', title: 'Tokens per second', series: ['tokens_per_second'] },
  ];

  var api = {
    isEvalEvent: isEvalEvent, evalNumbers: evalNumbers, ceLossScore: ceLossScore,
    num: num, esc: esc, stateName: stateName, typeName: typeName, roleName: roleName, fmt: fmt,
    si: si, bytes: bytes, duration: duration, tick: tick, time: time, plural: plural,
    badge: badge, bar: bar, progressOf: progressOf, eventX: eventX, markerPlugin: markerPlugin,
    densityBins: densityBins, chartMarkers: chartMarkers, evalChartData: evalChartData,
    RUN_CHARTS: RUN_CHARTS,
  };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.SaeFormat = api;
})(this);
