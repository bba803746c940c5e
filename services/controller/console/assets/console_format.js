// Pure helpers of the console, shared by the page (console.js) and its node test
// (tests/console/console_format_test.js): how eval results are found in a run's events.
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

  var api = { isEvalEvent: isEvalEvent, evalNumbers: evalNumbers, ceLossScore: ceLossScore,
              densityBins: densityBins };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.SaeFormat = api;
})(this);
