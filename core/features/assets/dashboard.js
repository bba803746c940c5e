// The feature dashboard (saectl features; docs/features.md). Opens from disk: the data are
// <script> files (data/index.js, data/vocab.js, data/chunk-NNNNN.js) that call SAE_DASH.*, so
// that no fetch() is needed (browsers refuse fetch() on file:// pages). A feature's chunk is
// loaded only when its page is shown.
//
// The controller's web console shows a run's stored dashboards with this same file:
// SAE_DASH_PAGE.index/feature(options) with options.root (the element to fill), options.base
// (the URL the data/ folder is under), options.featureHref / indexHref (links), options.feature
// (the feature to show; the page's #N by default) and options.params (URLSearchParams presets).
(function () {
  'use strict';

  var errorCount = 0;
  function reportError(message) {
    errorCount += 1;
    var el = document.getElementById('js-errors');
    if (el) {
      el.setAttribute('data-count', String(errorCount));
      el.textContent = 'Error: ' + message;
      el.hidden = false;
    }
  }
  var listening = false;
  // The static pages count their own errors; the console has its own counter.
  function catchErrors() {
    if (listening) return;
    listening = true;
    window.addEventListener('error', function (e) {
      reportError(e.message || ('could not load ' + ((e.target && e.target.src) || 'a file')));
    }, true);
  }

  // ---- Data loading -----------------------------------------------------------------------
  var data = { index: null, vocab: null, chunks: {} };
  var waiting = {};
  var base = '';  // the URL data/ is under: '' beside the page
  function useBase(b) {
    if (b === base) return;
    base = b;
    data = { index: null, vocab: null, chunks: {} };
    waiting = {};
  }
  function arrived(key) {
    var callbacks = waiting[key] || [];
    delete waiting[key];
    callbacks.forEach(function (cb) { cb(); });
  }
  window.SAE_DASH = {
    index: function (d) { data.index = d; arrived('index'); },
    vocab: function (v) { data.vocab = v; arrived('vocab'); },
    chunk: function (n, records) { data.chunks[n] = records; arrived('chunk-' + n); }
  };
  function has(key) {
    if (key === 'index') return data.index !== null;
    if (key === 'vocab') return data.vocab !== null;
    return data.chunks.hasOwnProperty(key.slice(6));
  }
  function load(key, src, cb) {
    if (has(key)) { cb(); return; }
    if (waiting[key]) { waiting[key].push(cb); return; }
    waiting[key] = [cb];
    var s = document.createElement('script');
    s.src = base + src;
    s.onerror = function () {
      reportError('could not load ' + base + src + (base ? '' : ' (open the folder that saectl features wrote)'));
    };
    document.head.appendChild(s);
  }
  function pad5(n) { var s = String(n); while (s.length < 5) s = '0' + s; return s; }
  function loadChunk(n, cb) { load('chunk-' + n, 'data/chunk-' + pad5(n) + '.js', cb); }

  // ---- Helpers ----------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === 'text') e.textContent = attrs[k];
        else if (k === 'className') e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function fmt(x) {
    if (x === 0) return '0';
    var a = Math.abs(x);
    if (a >= 1e4 || a < 1e-3) return x.toExponential(2);
    return x.toPrecision(4).replace(/\.?0+$/, '');
  }
  function pct(x) { return x === 0 ? '0%' : (x * 100 < 0.01 ? (x * 100).toExponential(1) : (x * 100).toPrecision(3)) + '%'; }
  function shown(s) { return s.replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5'); }
  function tokenText(id) {
    var s = data.vocab && data.vocab.hasOwnProperty(String(id)) ? data.vocab[String(id)] : '<' + id + '>';
    return shown(s);
  }
  var COL = { feature: 0, count: 1, frequency: 2, max: 3, mean: 4, chunk: 5, search: 6 };

  function summaryLine(s) {
    var parts = [];
    if (s.sae) parts.push('SAE ' + s.sae);
    if (s.hook_name) parts.push('hook ' + s.hook_name + (s.hook_head_index >= 0 ? ' head ' + s.hook_head_index : ''));
    if (s.d_sae) parts.push('d_sae ' + s.d_sae);
    if (s.model) parts.push('model ' + s.model);
    if (s.dataset) parts.push('dataset ' + s.dataset);
    parts.push(s.tokens + ' tokens (' + s.contexts + ' contexts of ' + s.context_size + ')');
    parts.push(s.features + ' features shown, ' + s.dead_features + ' dead');
    return parts.join(' \u00b7 ');
  }

  // ---- Index page -------------------------------------------------------------------------
  var PAGE_SIZE = 100;
  var INDEX_HTML =
    '<header><h1>SAE features</h1><div id="summary" class="summary">Loading data/index.js&hellip;</div></header>' +
    '<main><div class="controls">' +
    '<label>Search top tokens <input id="search" type="search" placeholder="e.g. the" autocomplete="off"></label>' +
    '<label>Sort by <select id="sort"><option value="feature">feature</option><option value="frequency">frequency</option>' +
    '<option value="max">max activation</option><option value="mean">mean activation</option></select></label>' +
    '<label><input id="descending" type="checkbox"> descending</label>' +
    '<label>Show <select id="filter"><option value="all">all features</option><option value="alive">live features</option>' +
    '<option value="dead">dead features</option></select></label>' +
    '<span id="page-info"></span>' +
    '<button id="prev" type="button">&larr; previous</button><button id="next" type="button">next &rarr;</button></div>' +
    '<table id="features" class="features"><thead><tr>' +
    '<th data-sort="feature">Feature</th><th data-sort="frequency">Frequency</th>' +
    '<th data-sort="max">Max act.</th><th data-sort="mean">Mean act.</th><th>Top tokens</th>' +
    '</tr></thead><tbody></tbody></table></main>';
  var FEATURE_HTML =
    '<header><nav><a id="all-features" href="index.html">&larr; all features</a> <a id="prev-feature" href="#">previous</a> ' +
    '<a id="next-feature" href="#">next</a><form id="goto" class="goto"><input id="goto-feature" type="number" min="0" ' +
    'placeholder="feature #"><button type="submit">go</button></form></nav>' +
    '<h1 id="title">Feature</h1><div id="stats" class="summary">Loading&hellip;</div>' +
    '<div id="hover-info" class="hover-info">&nbsp;</div></header>' +
    '<main id="feature"><div class="panels">' +
    '<section><h2>Activation histogram (non-zero, log-spaced bins)</h2><div id="histogram"></div></section>' +
    '<section><h2>Logit effects</h2><div id="logits"></div></section>' +
    '<section><h2>Nearest features (decoder cosine)</h2><div id="neighbours"></div></section></div>' +
    '<section><h2>Top activating contexts</h2><div id="top-examples"></div></section>' +
    '<section><h2>Samples from quantile intervals</h2><div id="intervals"></div></section></main>';

  // Fills options.root (default: #dash) with `html` and settles the options' defaults.
  function setUp(options, html, featureHref) {
    var o = options || {};
    if (!o.root) catchErrors();
    useBase(o.base || '');
    var root = o.root || document.getElementById('dash');
    root.classList.add('sae-dash');
    root.innerHTML = html;
    return { featureHref: o.featureHref || featureHref, indexHref: o.indexHref || 'index.html',
             feature: o.feature, params: o.params || new URLSearchParams(window.location.search),
             standalone: !o.root };
  }

  function indexPage(options) {
    var o = setUp(options, INDEX_HTML, function (f) { return 'feature.html#' + f; });
    var state = { sort: 'feature', descending: false, filter: 'all', search: '', page: 0 };
    var rows = [];
    function render() {
      var q = state.search.toLowerCase();
      var list = rows.filter(function (r) {
        if (state.filter === 'dead' && r[COL.count] !== 0) return false;
        if (state.filter === 'alive' && r[COL.count] === 0) return false;
        if (q && r[COL.search].toLowerCase().indexOf(q) < 0 && String(r[COL.feature]) !== q) return false;
        return true;
      });
      var c = COL[state.sort], sign = state.descending ? -1 : 1;
      list.sort(function (a, b) { return sign * (a[c] - b[c]) || a[0] - b[0]; });
      var pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
      state.page = Math.min(state.page, pages - 1);
      var slice = list.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
      var maxFreq = 0;
      rows.forEach(function (r) { maxFreq = Math.max(maxFreq, r[COL.frequency]); });
      var body = document.querySelector('#features tbody');
      body.textContent = '';
      slice.forEach(function (r) {
        var dead = r[COL.count] === 0;
        var tokens = el('td', { className: 'tokens' });
        if (dead) tokens.appendChild(el('span', { className: 'badge', text: 'dead' }));
        r[COL.search].split('\u001f').forEach(function (t) {
          if (t) tokens.appendChild(el('span', { className: 'chip', text: shown(t) }));
        });
        var bar = el('span', { className: 'bar', style: 'width:' + (maxFreq > 0 ? Math.round(60 * r[COL.frequency] / maxFreq) : 0) + 'px' });
        body.appendChild(el('tr', { className: 'feature-row' + (dead ? ' dead' : ''), 'data-feature': String(r[0]) }, [
          el('td', {}, [el('a', { href: o.featureHref(r[0]), text: String(r[0]) })]),
          el('td', { className: 'num' }, [bar, document.createTextNode(pct(r[COL.frequency]))]),
          el('td', { className: 'num', text: fmt(r[COL.max]) }),
          el('td', { className: 'num', text: fmt(r[COL.mean]) }),
          tokens
        ]));
      });
      document.getElementById('page-info').textContent = list.length + ' features \u00b7 page ' +
        (state.page + 1) + ' of ' + pages;
      document.querySelectorAll('th[data-sort]').forEach(function (th) {
        th.classList.toggle('sorted', th.getAttribute('data-sort') === state.sort);
      });
      document.body.setAttribute('data-rows', String(slice.length));
      document.body.setAttribute('data-matches', String(list.length));
    }
    load('index', 'data/index.js', function () {
      rows = data.index.rows;
      document.getElementById('summary').textContent = summaryLine(data.index.summary);
      document.body.setAttribute('data-total', String(rows.length));
      var search = document.getElementById('search');
      search.addEventListener('input', function () { state.search = search.value.trim(); state.page = 0; render(); });
      var sort = document.getElementById('sort');
      sort.addEventListener('change', function () { state.sort = sort.value; render(); });
      var desc = document.getElementById('descending');
      desc.addEventListener('change', function () { state.descending = desc.checked; render(); });
      var filter = document.getElementById('filter');
      filter.addEventListener('change', function () { state.filter = filter.value; state.page = 0; render(); });
      document.querySelectorAll('th[data-sort]').forEach(function (th) {
        th.addEventListener('click', function () {
          var key = th.getAttribute('data-sort');
          if (state.sort === key) state.descending = !state.descending;
          else { state.sort = key; state.descending = key !== 'feature'; }
          sort.value = state.sort;
          desc.checked = state.descending;
          render();
        });
      });
      document.getElementById('prev').addEventListener('click', function () { state.page = Math.max(0, state.page - 1); render(); });
      document.getElementById('next').addEventListener('click', function () { state.page += 1; render(); });
      // Query string presets, e.g. index.html?sort=frequency&search=the
      var params = o.params;
      if (params.get('sort') && COL.hasOwnProperty(params.get('sort'))) {
        state.sort = params.get('sort'); state.descending = state.sort !== 'feature';
        sort.value = state.sort; desc.checked = state.descending;
      }
      if (params.get('search')) { state.search = params.get('search'); search.value = state.search; }
      if (params.get('filter')) { state.filter = params.get('filter'); filter.value = state.filter; }
      render();
      document.body.setAttribute('data-ready', '1');
    });
  }

  // ---- Feature page -----------------------------------------------------------------------
  // The chunks' compact examples: [context, position, window_start, activation, token_ids,
  // activations] (features.jsonl has the same as named fields, plus the token strings).
  function unpack(a) {
    return Array.isArray(a) ? { context: a[0], position: a[1], window_start: a[2], activation: a[3],
                                token_ids: a[4], activations: a[5] } : a;
  }
  function exampleNode(packed, maxAct, hover) {
    var ex = unpack(packed);
    var node = el('div', { className: 'example' });
    node.appendChild(el('span', { className: 'act', text: fmt(ex.activation) }));
    for (var i = 0; i < ex.token_ids.length; i++) {
      var a = ex.activations[i], id = ex.token_ids[i];
      var pos = ex.window_start + i;
      var span = el('span', { className: 'tok' + (a > 0 ? ' active' : '') + (pos === ex.position ? ' peak' : ''),
                              text: tokenText(id), 'data-act': String(a) });
      if (a > 0) {
        var alpha = maxAct > 0 ? Math.min(1, 0.15 + 0.85 * a / maxAct) : 1;
        span.style.backgroundColor = 'rgba(255, 126, 20, ' + alpha.toFixed(3) + ')';
      }
      span.title = JSON.stringify(tokenText(id)) + ' (id ' + id + '): activation ' + fmt(a);
      span.addEventListener('mouseenter', hover.bind(null, span.title + ' \u00b7 context ' + ex.context + ', position ' + pos));
      node.appendChild(span);
    }
    return node;
  }

  function histogramNode(h) {
    var counts = h.counts, edges = h.edges;
    var W = 360, H = 120, left = 4, bottom = 18;
    var svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'histogram');
    svg.setAttribute('width', String(W));
    svg.setAttribute('height', String(H + bottom));
    svg.setAttribute('data-bars', String(counts.length));
    var max = 0;
    counts.forEach(function (c) { max = Math.max(max, c); });
    var bw = (W - 2 * left) / Math.max(1, counts.length);
    counts.forEach(function (c, i) {
      var r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
      var h2 = max > 0 ? Math.max(c > 0 ? 1 : 0, H * c / max) : 0;
      r.setAttribute('x', String(left + i * bw));
      r.setAttribute('y', String(H - h2));
      r.setAttribute('width', String(Math.max(1, bw - 1)));
      r.setAttribute('height', String(h2));
      var t = document.createElementNS('http://www.w3.org/2000/svg', 'title');
      t.textContent = '[' + fmt(edges[i]) + ', ' + fmt(edges[i + 1]) + '): ' + c;
      r.appendChild(t);
      svg.appendChild(r);
    });
    function label(x, text, anchor) {
      var t = document.createElementNS('http://www.w3.org/2000/svg', 'text');
      t.setAttribute('x', String(x));
      t.setAttribute('y', String(H + 13));
      t.setAttribute('text-anchor', anchor);
      t.textContent = text;
      svg.appendChild(t);
    }
    if (edges.length > 0) {
      label(left, fmt(edges[0]), 'start');
      label(W - left, fmt(edges[edges.length - 1]), 'end');
    }
    return svg;
  }

  function logitTable(list, kind) {
    var t = el('table', { className: 'logits ' + kind }, [
      el('thead', {}, [el('tr', {}, [el('th', { text: kind === 'raised' ? 'Raised' : 'Lowered' }), el('th', { text: 'logit' })])])]);
    var body = el('tbody');
    list.forEach(function (e) {
      body.appendChild(el('tr', {}, [el('td', {}, [el('span', { className: 'chip', text: shown(e.token) })]),
                                     el('td', { className: 'value', text: (e.value > 0 ? '+' : '') + fmt(e.value) })]));
    });
    t.appendChild(body);
    return t;
  }

  function featurePage(options) {
    var o = setUp(options, FEATURE_HTML, function (f) { return '#' + f; });
    document.getElementById('all-features').href = o.indexHref;
    var rowOf = {}, order = [];
    var hoverInfo = document.getElementById('hover-info');
    function hover(text) { hoverInfo.textContent = text; }
    function show() {
      var f = o.standalone ? parseInt(window.location.hash.replace('#', ''), 10) : Number(o.feature);
      if (isNaN(f)) f = order.length > 0 ? order[0] : 0;
      var row = rowOf[f];
      document.body.removeAttribute('data-ready');
      document.body.setAttribute('data-feature', String(f));
      document.getElementById('title').textContent = 'Feature ' + f;
      if (!row) {
        document.getElementById('stats').textContent = 'Feature ' + f + ' is not in this dashboard (' + order.length + ' features).';
        document.body.setAttribute('data-ready', 'missing');
        return;
      }
      var at = order.indexOf(f);
      var prev = document.getElementById('prev-feature'), next = document.getElementById('next-feature');
      prev.href = o.featureHref(at > 0 ? order[at - 1] : f);
      next.href = o.featureHref(at + 1 < order.length ? order[at + 1] : f);
      document.getElementById('stats').textContent = 'Loading data/chunk-' + pad5(row[COL.chunk]) + '.js\u2026';
      loadChunk(row[COL.chunk], function () {
        var rec = null;
        data.chunks[row[COL.chunk]].forEach(function (r) { if (r.feature === f) rec = r; });
        if (rec) render(rec);
      });
    }
    function render(rec) {
      var s = data.index.summary;
      var stats = document.getElementById('stats');
      stats.textContent = rec.dead
        ? 'Dead: did not fire on any of the ' + s.tokens + ' tokens.'
        : 'Fires on ' + pct(rec.frequency) + ' of tokens (' + rec.count + ' of ' + s.tokens +
          ') \u00b7 max activation ' + fmt(rec.max_activation) + ' \u00b7 mean activation when firing ' +
          fmt(rec.mean_activation);
      if (rec.dead) stats.appendChild(el('span', { className: 'badge', text: 'dead' }));
      var hist = document.getElementById('histogram');
      hist.textContent = '';
      if (rec.histogram.counts.length > 0) hist.appendChild(histogramNode(rec.histogram));
      else hist.appendChild(el('p', { className: 'dead', text: 'No non-zero activations.' }));
      var logits = document.getElementById('logits');
      logits.textContent = '';
      if (rec.logits) {
        logits.appendChild(el('div', { className: 'panels' }, [logitTable(rec.logits.raised, 'raised'),
                                                              logitTable(rec.logits.lowered, 'lowered')]));
      } else {
        logits.appendChild(el('p', { className: 'dead', text: s.logits_note || 'No logit effects for this hook.' }));
      }
      var nb = document.getElementById('neighbours');
      nb.textContent = '';
      var nt = el('table', { className: 'neighbours' }, [el('thead', {}, [el('tr', {}, [el('th', { text: 'feature' }), el('th', { text: 'cosine' })])])]);
      var nbody = el('tbody');
      rec.neighbours.forEach(function (n) {
        nbody.appendChild(el('tr', {}, [el('td', {}, [el('a', { href: o.featureHref(n.feature), text: String(n.feature) })]),
                                        el('td', { className: 'num', text: fmt(n.cosine) })]));
      });
      nt.appendChild(nbody);
      nb.appendChild(nt);
      var top = document.getElementById('top-examples');
      top.textContent = '';
      rec.top_examples.forEach(function (ex) { top.appendChild(exampleNode(ex, rec.max_activation, hover)); });
      if (rec.top_examples.length === 0) top.appendChild(el('p', { className: 'dead', text: 'None: the feature never fired.' }));
      var iv = document.getElementById('intervals');
      iv.textContent = '';
      rec.interval_samples.slice().reverse().forEach(function (g) {
        var box = el('div', { className: 'interval' }, [el('h3', {
          text: 'Activations ' + fmt(g.lower) + ' \u2013 ' + fmt(g.upper) + ': ' + g.count + ' tokens (' + pct(g.fraction) + ' of firings)' })]);
        g.examples.forEach(function (ex) { box.appendChild(exampleNode(ex, rec.max_activation, hover)); });
        iv.appendChild(box);
      });
      if (o.standalone) document.title = 'SAE feature ' + rec.feature;
      document.body.setAttribute('data-ready', '1');
    }
    document.getElementById('goto').addEventListener('submit', function (e) {
      e.preventDefault();
      window.location.href = o.featureHref(document.getElementById('goto-feature').value);
    });
    load('index', 'data/index.js', function () {
      data.index.rows.forEach(function (r) { rowOf[r[0]] = r; order.push(r[0]); });
      load('vocab', 'data/vocab.js', function () {
        if (o.standalone) window.addEventListener('hashchange', show);
        show();
      });
    });
  }

  window.SAE_DASH_PAGE = { index: indexPage, feature: featurePage };
})();
