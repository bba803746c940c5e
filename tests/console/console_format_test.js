// The console's generic eval path (services/controller/console/assets/console_format.js) under
// node: eval events are found by type name, their numbers wherever they sit, the CE-loss score
// by its SAELens name. Run: node tests/console/console_format_test.js
'use strict';
const assert = require('assert');
const path = require('path');
const format = require(path.join(__dirname, '../../services/controller/console/assets/console_format.js'));

// A RunEvent in proto3 JSON as the controller serves it, with eval results in whatever field an
// eval event type carries them (here nested, with SAELens's grouping).
const evalEvent = {
  run_id: 'tiny-x1', sequence: '42', time_unix_ms: '1700000000000', type: 'TYPE_EVAL_COMPLETED',
  generation: '0', state: 'RUN_STATE_RUNNING', message: 'eval at step 100', step: '100',
  tokens: '25600', bytes: '0', worker: { worker_id: 'activation-server-x', rank: 0 },
  eval: {
    model_performance_preservation: { ce_loss_score: 0.93, ce_loss_with_sae: '3.5' },
    model_behavior_preservation: { kl_div_score: 0.91 },
    sparsity: { l0: 12, dead: '3' },
    note: 'text is not a number',
  },
};

assert.strictEqual(format.isEvalEvent(evalEvent), true);
assert.strictEqual(format.isEvalEvent({ type: 'TYPE_CHECKPOINT_COMMITTED' }), false);
assert.strictEqual(format.isEvalEvent(null), false);
assert.strictEqual(format.isEvalEvent({ type: 'TYPE_EVAL_FAILED', eval: { ce_loss_score: 0 } }), false,
                   'a failed evaluation has no results (its zeros are proto3 defaults)');

const numbers = format.evalNumbers(evalEvent);
assert.deepStrictEqual(numbers, {
  'eval.model_performance_preservation.ce_loss_score': 0.93,
  'eval.model_performance_preservation.ce_loss_with_sae': 3.5,
  'eval.model_behavior_preservation.kl_div_score': 0.91,
  'eval.sparsity.l0': 12,
  'eval.sparsity.dead': 3,
}, 'every number but the fields every event has (sequence, step, worker, ...)');

assert.strictEqual(format.ceLossScore(evalEvent), 0.93);
assert.strictEqual(format.ceLossScore({ type: 'TYPE_EVAL_FAILED', message: 'server lost' }), null);
assert.strictEqual(format.ceLossScore({ type: 'TYPE_EVAL', ce_loss_score: '0.5' }), 0.5,
                   'a flat field, sent as a string');
assert.strictEqual(format.ceLossScore({ type: 'TYPE_PROGRESS', ce_loss_score: 0.5 }), null,
                   'only eval events count');
assert.strictEqual(format.ceLossScore(null), null);

// The eval event the controller records: an EvalReport under `eval`, whose step, tokens and
// receipt time are not results.
const reported = format.evalNumbers({
  type: 'TYPE_EVAL_COMPLETED', step: '40',
  eval: { step: '40', tokens: '10240', time_unix_ms: '1700000000000', seconds: 0.5,
          ce_loss_score: 0.97, kl_div_score: 0.95, results_json: '{"a": 1}', final: false },
});
assert.deepStrictEqual(reported, { 'eval.seconds': 0.5, 'eval.ce_loss_score': 0.97,
                                   'eval.kl_div_score': 0.95 });

// The feature-density histogram of the last window.
assert.strictEqual(format.densityBins({}), null);
const bins = format.densityBins({ log10_density_histogram: ['3', '0', '5'] });
assert.deepStrictEqual(bins[0], { from: -10, to: -9.5, count: 3 });
assert.deepStrictEqual(bins[2], { from: -9, to: -8.5, count: 5 });
// The run page's markers and eval chart, from the run's events.
const columns = { time_unix_ms: [1000, 2000, 3000], step: [10, 20, 30], tokens: [640, 1280, 1920] };
const events = [
  { type: 'TYPE_CHECKPOINT_COMMITTED', step: '20', tokens: '1280', time_unix_ms: '2100' },
  { type: 'TYPE_STATE_CHANGED', state: 'RUN_STATE_RESTARTING', time_unix_ms: '2500' },
  { type: 'TYPE_STATE_CHANGED', state: 'RUN_STATE_RUNNING', time_unix_ms: '2600' },
  { type: 'TYPE_EVAL_COMPLETED', step: '30', eval: { ce_loss_score: 0.9, kl_div_score: 0.8, seconds: 1 } },
  { type: 'TYPE_EVAL_COMPLETED', step: '10', eval: { ce_loss_score: 0.5 } },
];
assert.deepStrictEqual(format.chartMarkers(events, columns, 'step'), [
  { x: 20, color: '#1f9d55', restart: false }, { x: 20, color: '#d64545', restart: true }]);
assert.deepStrictEqual(format.chartMarkers(events, columns, 'tokens').map((m) => m.x), [1280, 1280]);
const evalChart = format.evalChartData(events, 'step', columns).chart;
assert.deepStrictEqual(evalChart.series, ['eval.ce_loss_score', 'eval.kl_div_score']);
assert.deepStrictEqual(evalChart.data.x, [10, 30], 'sorted by step');
assert.deepStrictEqual(evalChart.data.y['eval.kl_div_score'], [null, 0.8]);
assert.strictEqual(format.evalChartData(events.slice(0, 3), 'step', columns), null);
assert.ok(format.RUN_CHARTS.some((c) => c.id === 'l0'));
console.log('console_format_test: ok');
