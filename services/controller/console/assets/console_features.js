// The console's features page: a run's stored feature dashboards (`saectl features RUN`), drawn
// by the static dashboard's own script (dashboard.js, SAE_DASH_PAGE, from core/features/assets)
// out of the files the controller serves at /api/runs/ID/features/ (console_routes.h).
//
//   #/features/RUN[?sort=frequency&filter=alive&search=the]   the index
//   #/features/RUN/N                                           feature N
'use strict';

(function () {
  var esc = SaeFormat.esc;

  // The page for `hash` (without '#/'): "features/RUN", "features/RUN/12", "features/RUN?sort=max".
  function show(main, hash) {
    var query = '';
    var at = hash.indexOf('?');
    if (at >= 0) { query = hash.slice(at + 1); hash = hash.slice(0, at); }
    var parts = hash.split('/');
    var runId = decodeURIComponent(parts[1] || '');
    var feature = parts.length > 2 && parts[2] !== '' ? Number(parts[2]) : null;
    var id = encodeURIComponent(runId);
    document.body.dataset.page = 'features';
    main.innerHTML = '<div class="run-head"><h1>Features of <a href="#/run/' + id + '">' + esc(runId) + '</a></h1>' +
      '<span class="muted" id="features-source"></span></div><div id="features-dash"></div>';
    fetch('/api/runs/' + id, { credentials: 'same-origin', cache: 'no-store' }).then(function (response) {
      if (response.status === 401) { location.href = '/login'; throw new Error('the controller requires its token'); }
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
        return body;
      });
    }).then(function (data) {
      var run = data.run;
      var box = document.getElementById('features-dash');
      if (!box) return;  // another page by now
      if (run.features_step === undefined || run.features_step === null) {
        box.innerHTML = '<div class="empty-state">' + noFeatures(runId) + '</div>';
        document.body.dataset.ready = '1';
        return;
      }
      document.getElementById('features-source').textContent = 'dashboards of the SAE at step ' +
        run.features_step + ' (' + SaeFormat.bytes(run.features_bytes) + ')';
      var options = {
        root: box,
        base: '/api/runs/' + id + '/features/',
        featureHref: function (f) { return '#/features/' + id + '/' + f; },
        indexHref: '#/features/' + id,
        params: new URLSearchParams(query),
      };
      if (feature === null) {
        SAE_DASH_PAGE.index(options);
      } else {
        options.feature = feature;
        SAE_DASH_PAGE.feature(options);
      }
    }).catch(function (e) {
      var box = document.getElementById('features-dash');
      if (box) box.innerHTML = '<div class="empty-state error">' + esc(e.message) + '</div>';
    });
  }

  function noFeatures(runId) {
    return 'No feature dashboards for this run. <code>saectl features ' + esc(runId) +
      '</code> computes them and stores them here.';
  }

  // The run page's "Feature dashboards" box.
  function runBox(run) {
    if (run.features_step === undefined || run.features_step === null) return '<div class="empty-state">' + noFeatures(run.run_id) + '</div>';
    var id = encodeURIComponent(run.run_id);
    return '<div class="card" id="features-link">Dashboards of the SAE at step ' + esc(run.features_step) + ' (' +
      SaeFormat.bytes(run.features_bytes) + '): <a href="#/features/' + id + '">all features</a> · ' +
      '<a href="#/features/' + id + '?sort=frequency">most frequent</a> · ' +
      '<a href="#/features/' + id + '?sort=max">strongest</a> · ' +
      '<a href="/api/runs/' + id + '/features/features.jsonl">features.jsonl</a></div>';
  }

  window.SaeConsoleFeatures = { show: show, runBox: runBox };
})();
