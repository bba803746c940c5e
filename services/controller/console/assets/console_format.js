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
  function isEvalEvent(event) {
    return !!event && /EVAL/.test(String(event.type)) && !/FAILED/.test(String(event.type));
  }

  function evalNumbers(event) {
    var out = {};
    function walk(prefix, value) {
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

  var api = { isEvalEvent: isEvalEvent, evalNumbers: evalNumbers, ceLossScore: ceLossScore };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.SaeFormat = api;
})(this);
