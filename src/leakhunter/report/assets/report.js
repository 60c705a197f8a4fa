// The survey report's behaviour: summary, sensor grid, the recordings table (filter, sort,
// pages), the detail panel, review marks kept in the browser and exported as a labels CSV.
// Plain DOM code with no library, so the page works offline from a single file.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('survey-data').textContent);
  var C = {};
  D.columns.forEach(function (c, i) { C[c] = i; });
  var N = D.rows.length;
  var PAGE = 100;  // table rows drawn at once: the page stays fast at any survey size
  var STORE = 'leakhunter-review:' + D.digest;
  var MARKS = {leak: 'confirmed leak', noleak: 'not a leak', unsure: 'unsure'};
  var marks = loadMarks();
  var view = [], page = 0, current = -1, sortBy = null, sortDir = 1;
  var byPath = {};
  var search = new Array(N);
  for (var i = 0; i < N; i++) {
    var r = D.rows[i];
    byPath[r[C.path]] = i;
    byPath[D.files[i]] = i;
    search[i] = [r[C.path], r[C.sensor_id], r[C.recording_id], r[C.timestamp], r[C.status],
                 r[C.decision] || 'not judged'].join(' ').toLowerCase();
  }

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (attrs[k] === null || attrs[k] === undefined) return;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || v === '') return '–';
    return typeof v === 'number' ? v.toFixed(digits === undefined ? 3 : digits) : String(v);
  }
  function base(p) { return String(p).split(/[\\/]/).pop(); }
  function colour(v) {
    if (v === null || v === undefined) return '';
    var p = Math.max(0, Math.min(1, v));
    return 'hsl(' + (60 - 60 * p).toFixed(0) + ',90%,' + (94 - 49 * p).toFixed(0) + '%)';
  }
  function flagged(i) { return D.rows[i][C.decision] === 'LEAK'; }

  // --- review marks: kept in localStorage under the predictions file's digest ---------------
  function loadMarks() {
    try { return JSON.parse(window.localStorage.getItem(STORE) || '{}') || {}; }
    catch (e) { return {}; }
  }
  function saveMarks() {
    try { window.localStorage.setItem(STORE, JSON.stringify(marks)); }
    catch (e) { message('marks cannot be kept in this browser (' + e.message + '): export them'); }
  }
  function mark(i, value) {
    var key = D.rows[i][C.path];
    if (value) marks[key] = value; else delete marks[key];
    saveMarks();
    drawTable();
    drawDetail();
  }
  function message(text) { $('review-message').textContent = text; }
  function csvCell(s) { s = String(s); return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  function labelsCsv() {
    var lines = ['path,label'];
    for (var i = 0; i < N; i++) {
      var m = marks[D.rows[i][C.path]];
      if (m === 'leak' || m === 'noleak') lines.push(csvCell(D.files[i]) + ',' + csvCell(D.labels[m]));
    }
    return lines.join('\n') + '\n';
  }
  function parseCsv(text) {
    var rows = [], row = [], cell = '', q = false;
    for (var k = 0; k < text.length; k++) {
      var ch = text[k];
      if (q) {
        if (ch === '"' && text[k + 1] === '"') { cell += '"'; k++; }
        else if (ch === '"') q = false;
        else cell += ch;
      } else if (ch === '"') q = true;
      else if (ch === ',') { row.push(cell); cell = ''; }
      else if (ch === '\n' || ch === '\r') {
        if (ch === '\r' && text[k + 1] === '\n') k++;
        row.push(cell); rows.push(row); row = []; cell = '';
      } else cell += ch;
    }
    if (cell !== '' || row.length) { row.push(cell); rows.push(row); }
    return rows.filter(function (r) { return r.length > 1 || r[0] !== ''; });
  }
  function importCsv(text) {
    var rows = parseCsv(text.replace(/^\ufeff/, ''));
    var head = (rows.shift() || []).map(function (h) { return h.trim().toLowerCase(); });
    var pi = head.indexOf('path'), li = head.indexOf('label');
    if (pi < 0 || li < 0) { message('not a labels CSV: it needs path and label columns'); return; }
    var done = 0, unknown = 0, other = 0;
    rows.forEach(function (r) {
      var i = byPath[r[pi]];
      if (i === undefined) { unknown++; return; }
      var m = r[li] === D.labels.leak ? 'leak' : r[li] === D.labels.noleak ? 'noleak' : null;
      if (!m) { other++; return; }
      marks[D.rows[i][C.path]] = m; done++;
    });
    saveMarks();
    message('imported ' + done + ' mark(s)' + (unknown ? '; ' + unknown + ' path(s) not in this survey' : '') +
            (other ? '; ' + other + ' with a label other than ' + D.labels.leak + '/' + D.labels.noleak : ''));
    refresh();
  }

  // --- summary and model --------------------------------------------------------------------
  function drawSummary() {
    var s = D.summary, cards = $('summary-cards');
    function card(value, label, cls, id) {
      cards.appendChild(el('div', {cls: 'card' + (cls ? ' ' + cls : ''), id: id}, [el('b', {text: String(value)}), el('span', {text: label})]));
    }
    card(s.recordings, 'recordings', '', 'sum-recordings');
    card(s.leaks, 'called leaks', 'leak', 'sum-leaks');
    card(s.no_leaks, 'no leak', '', 'sum-noleaks');
    card(s.not_judged, 'not judged', '', 'sum-notjudged');
    var alerts = D.sensors.alerts.filter(function (a) { return a.alert; }).length;
    card(alerts, 'sensors alerting', alerts ? 'leak' : '', 'sum-alerts');
    var notes = $('summary-notes');
    function note(text, cls, id) { notes.appendChild(el('li', {text: text, cls: cls || '', id: id || null})); }
    note('Status: ' + Object.keys(s.statuses).map(function (k) { return k + ' ' + s.statuses[k]; }).join(', '), '', 'sum-statuses');
    note('Recorded from ' + (s.first || '–') + ' to ' + (s.last || '–') + (D.sensors.nights.length ? ' (' + D.sensors.nights.length + ' nights)' : ''));
    var m = s.media;
    note('Audio embedded for ' + m.audio + ' recording(s) (' + (m.audio_bytes / 1e6).toFixed(2) + ' MB; --audio ' + s.audio_mode +
         '), spectrograms for ' + m.spectrograms + ' (--spectrograms ' + s.spectrogram_mode + ')', '', 'sum-media');
    if (m.audio_capped) note('Audio size cap reached: ' + m.audio_capped + ' recording(s) left without audio (cap ' + m.cap_mb + ' MB, most leak-like kept)', 'warn', 'sum-capped');
    if (m.missing) note(m.missing + ' recording file(s) could not be read for audio or spectrogram (missing or unreadable)', 'warn', 'sum-missing');
    if (s.locations) {
      var L = s.locations;
      note('Locations: ' + L.pairs + ' pair(s) (' + (Object.keys(L.counts).map(function (k) { return L.counts[k] + ' ' + k; }).join(', ') || 'none') +
           '), correlation plots for ' + L.plots + (L.plots_missing ? '; ' + L.plots_missing + ' plot file(s) missing' : '') +
           (L.plots_capped ? '; ' + L.plots_capped + ' left out by the size cap' : ''), L.plots_missing || L.plots_capped ? 'warn' : '', 'sum-locations');
    }
    note('This file: ' + s.file_size, '', 'sum-size');
    $('subtitle').textContent = base(D.source) + ' · ' + N + ' recordings · generated ' + D.generated;
    $('footer').textContent = 'leakhunter ' + D.version + ' · predictions ' + D.source + ' (SHA-256 ' + D.digest.slice(0, 12) + '…) · review marks are kept in this browser only until exported';
  }
  function drawModel() {
    var box = $('model-card'), m = D.model;
    if (!m) { box.appendChild(el('p', {cls: 'note', id: 'model-note', text: 'Model unknown: ' + D.model_note})); return; }
    var d = D.decision || m;
    var dl = el('dl', {cls: 'facts'});
    function fact(k, v) { dl.appendChild(el('dt', {text: k})); dl.appendChild(el('dd', {text: v})); }
    fact('model file', m.path + (m.onnx ? ' (scored with ' + m.onnx + ')' : ''));
    fact('classes', (m.class_names || []).join(', ') + (m.positive ? ' (leak: ' + m.positive.join(', ') + ')' : ''));
    fact('threshold', fmt(d.threshold, 4) + ' on segment leak probability' + (m.threshold_method ? ' — chosen ' + m.threshold_method : ' — not chosen by evaluate'));
    fact('decision rule', (d.aggregate || 'vote') + (d.aggregate === 'vote' || !d.aggregate ? ': a leak when at least ' + fmt(d.vote_fraction, 2) + ' of the segments are' : ''));
    if (m.parent) fact('derived from', m.parent.path || JSON.stringify(m.parent));
    fact('trained', 'epoch ' + fmt(m.epoch, 0) + ', ' + fmt(m.parameters, 0) + ' parameters, dataset ' + (m.dataset_dir || '–') + ', leakhunter ' + (m.leakhunter_version || '–'));
    box.appendChild(dl);
    if (m.metrics) {
      var t = el('table', {cls: 'data', id: 'model-metrics'}), tr = el('tr'), tv = el('tr');
      Object.keys(m.metrics).forEach(function (k) { tr.appendChild(el('th', {text: k})); tv.appendChild(el('td', {cls: 'num', text: fmt(m.metrics[k], 4)})); });
      t.appendChild(tr); t.appendChild(tv);
      box.appendChild(el('h3', {text: 'Validation metrics at the saved epoch'}));
      box.appendChild(el('div', {cls: 'scroll'}, [t]));
    }
  }

  // --- sensors over time -----------------------------------------------------------------
  var GRID_SENSORS = 200, GRID_NIGHTS = 90;
  function drawSensors() {
    var S = D.sensors;
    if (!S.alerts.length) {
      $('sensor-note').textContent = 'No sensor view: ' + (S.note || 'no recordings') + '.';
      $('sensor-body').style.display = 'none';
      return;
    }
    $('sensor-note').textContent = S.note ? 'Not placed: ' + S.note + '.' : '';
    $('alert-rule').textContent = 'A sensor alerts when at least ' + S.min_leak_nights + ' of its last ' + S.window +
      ' recorded nights were called a leak (a night runs noon to noon). Ranked: alerts first, then leak nights and recent probability.';
    drawGrid(0);
    Array.prototype.forEach.call(document.querySelectorAll('input[name=colour]'), function (r) {
      r.addEventListener('change', function () { drawGrid(Number(r.value)); });
    });
    var t = $('alerts');
    var cols = ['rank', 'sensor_id', 'alert', 'leak_nights', 'recent_nights', 'first_leak_night', 'last_night', 'mean_probability_recent', 'max_probability_recent', 'latest_decision', 'recordings'];
    var head = el('tr');
    cols.forEach(function (c) { head.appendChild(el('th', {text: c.replace(/_/g, ' ')})); });
    t.appendChild(el('thead', null, [head]));
    var body = el('tbody');
    t.appendChild(body);
    // alerting sensors and the next few; the rest on request (a survey may have thousands)
    var first = S.alerts.filter(function (a) { return a.alert; }).length + 10;
    function rows(upto) {
      body.textContent = '';
      S.alerts.slice(0, upto).forEach(function (a) {
        var tr = el('tr', {'data-sensor': a.sensor_id});
        cols.forEach(function (c) {
          var v = a[c];
          tr.appendChild(el('td', {cls: (typeof v === 'number' ? 'num' : '') + (c === 'alert' && v ? ' LEAK' : ''),
            text: c === 'alert' ? (v ? 'yes' : 'no') : fmt(v, c.indexOf('probability') >= 0 ? 3 : 0)}));
        });
        body.appendChild(tr);
      });
    }
    rows(first);
    if (S.alerts.length > first) {
      var more = el('button', {type: 'button', id: 'all-sensors', text: 'Show all ' + S.alerts.length + ' sensors'});
      more.addEventListener('click', function () { rows(S.alerts.length); more.remove(); });
      t.parentNode.appendChild(more);
    }
  }
  function drawGrid(which) {
    var S = D.sensors, nights = S.nights.slice(-GRID_NIGHTS), box = $('sensor-grid');
    box.textContent = '';
    var t = el('table'), head = el('tr', null, [el('th')]);
    nights.forEach(function (n) { head.appendChild(el('th', {cls: 'night', text: n.slice(5)})); });
    t.appendChild(head);
    S.grid.slice(0, GRID_SENSORS).forEach(function (cells, k) {
      var a = S.alerts[k];
      var th = el('th', {cls: 'sensor' + (a.alert ? ' alert' : ''), text: a.sensor_id, title: 'show this sensor\'s recordings'});
      th.addEventListener('click', function () { $('f-sensor').value = a.sensor_id; refresh(); $('recordings').scrollIntoView(); });
      var tr = el('tr', null, [th]);
      nights.forEach(function (n) {
        var c = cells[n];
        if (!c) { tr.appendChild(el('td', {cls: 'cell none'})); return; }
        var td = el('td', {cls: 'cell' + (c[3] ? ' called' : ''),
          title: a.sensor_id + ' night of ' + n + ': max ' + (which ? 'vote fraction ' : 'leak probability ') + fmt(c[which]) + ', ' + c[2] + ' recording(s), ' + (c[3] === null ? 'not judged' : c[3] ? 'called a leak' : 'no leak')});
        td.style.background = colour(c[which]);
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
    if (S.grid.length > GRID_SENSORS || S.nights.length > GRID_NIGHTS)
      box.appendChild(el('p', {cls: 'note', text: 'Showing the ' + Math.min(GRID_SENSORS, S.grid.length) + ' highest-ranked of ' + S.grid.length + ' sensors and the last ' + nights.length + ' of ' + S.nights.length + ' nights.'}));
  }

  // --- the recordings table ---------------------------------------------------------------
  var SHOWN = ['path', 'sensor_id', 'timestamp', 'decision', 'leak_probability', 'vote_fraction', 'status'].concat(D.extra);
  function fillSelect(id, values) {
    var s = $(id);
    values.forEach(function (v) { s.appendChild(el('option', {value: v, text: v})); });
  }
  function distinct(col) {
    var seen = {};
    D.rows.forEach(function (r) { if (r[C[col]] !== '') seen[r[C[col]]] = 1; });
    return Object.keys(seen).sort();
  }
  function refresh() {
    var t0 = performance.now();
    var dec = $('f-decision').value, st = $('f-status').value, se = $('f-sensor').value,
        rv = $('f-review').value, q = $('f-search').value.trim().toLowerCase();
    var out = [];
    for (var i = 0; i < N; i++) {
      var r = D.rows[i];
      if (dec && (dec === '-' ? r[C.decision] !== '' : r[C.decision] !== dec)) continue;
      if (st && r[C.status] !== st) continue;
      if (se && r[C.sensor_id] !== se) continue;
      if (rv && (marks[r[C.path]] || 'none') !== rv) continue;
      if (q && search[i].indexOf(q) < 0) continue;
      out.push(i);
    }
    if (sortBy !== null) {
      var k = C[sortBy];
      out.sort(function (a, b) {
        var x = D.rows[a][k], y = D.rows[b][k];
        if (x === y) return a - b;
        if (x === null || x === '') return 1;  // empty values last in either direction
        if (y === null || y === '') return -1;
        return (x < y ? -1 : 1) * sortDir;
      });
    }
    view = out;
    page = Math.min(page, Math.max(0, Math.ceil(view.length / PAGE) - 1));
    drawTable();
    document.body.setAttribute('data-filter-ms', (performance.now() - t0).toFixed(2));
  }
  function drawHead() {
    var tr = el('tr');
    SHOWN.concat(['review']).forEach(function (c) {
      var th = el('th', {cls: c === 'review' ? '' : 'sortable', 'data-col': c,
        text: c.replace(/_/g, ' ') + (sortBy === c ? (sortDir > 0 ? ' ▲' : ' ▼') : '')});
      if (c !== 'review') th.addEventListener('click', function () {
        if (sortBy === c) sortDir = -sortDir; else { sortBy = c; sortDir = c === 'leak_probability' || c === 'vote_fraction' ? -1 : 1; }
        drawHead(); refresh();
      });
      tr.appendChild(th);
    });
    var head = document.querySelector('#table thead');
    head.textContent = '';
    head.appendChild(tr);
  }
  function drawTable() {
    var body = document.querySelector('#table tbody');
    body.textContent = '';
    view.slice(page * PAGE, (page + 1) * PAGE).forEach(function (i) {
      var r = D.rows[i];
      var tr = el('tr', {'data-index': String(i), cls: i === current ? 'selected' : ''});
      SHOWN.forEach(function (c) {
        var v = r[C[c]];
        var cls = typeof v === 'number' ? 'num' : c === 'decision' ? (v || '').replace(' ', '') : '';
        tr.appendChild(el('td', {cls: cls, text: c === 'path' ? base(v) : c === 'decision' && !v ? 'not judged' : fmt(v), title: c === 'path' ? v : null}));
      });
      var m = marks[r[C.path]];
      tr.appendChild(el('td', {cls: m ? 'mark-' + m : '', text: m ? MARKS[m] : ''}));
      tr.addEventListener('click', function () { select(i); });
      body.appendChild(tr);
    });
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    $('match-count').textContent = String(view.length);
    $('total-count').textContent = String(N);
    $('page-info').textContent = 'page ' + (page + 1) + ' of ' + pages;
    $('prev-page').disabled = page === 0;
    $('next-page').disabled = page >= pages - 1;
    var counts = {leak: 0, noleak: 0, unsure: 0};
    Object.keys(marks).forEach(function (k) { if (byPath[k] !== undefined) counts[marks[k]]++; });
    $('review-count').textContent = 'Reviewed: ' + counts.leak + ' confirmed leak, ' + counts.noleak + ' not a leak, ' + counts.unsure + ' unsure.';
  }
  function select(i) {
    current = i;
    var pos = view.indexOf(i);
    if (pos >= 0) page = Math.floor(pos / PAGE);
    drawTable();
    drawDetail();
    var row = document.querySelector('#table tbody tr.selected');
    if (row && row.scrollIntoView) row.scrollIntoView({block: 'nearest'});
  }
  function step(dir, onlyFlagged) {
    var pos = view.indexOf(current);
    for (var k = pos + dir; k >= 0 && k < view.length; k += dir) {
      if (!onlyFlagged || flagged(view[k])) { select(view[k]); return; }
    }
    message(onlyFlagged ? 'no ' + (dir > 0 ? 'next' : 'previous') + ' flagged recording in this view' : '');
  }

  // --- one recording --------------------------------------------------------------------
  function drawDetail() {
    var box = $('detail');
    box.textContent = '';
    if (current < 0) return;
    var i = current, r = D.rows[i], m = D.media[String(i)] || {};
    box.appendChild(el('h3', {id: 'detail-title', text: base(r[C.path])}));
    var dl = el('dl', {cls: 'facts'});
    function fact(k, v, cls) { dl.appendChild(el('dt', {text: k})); dl.appendChild(el('dd', {text: v, cls: cls || ''})); }
    fact('decision', r[C.decision] || 'not judged (' + r[C.status] + ')', (r[C.decision] || '').replace(' ', ''));
    fact('leak probability', fmt(r[C.leak_probability]) + ' (mean over segments)');
    fact('vote fraction', fmt(r[C.vote_fraction]) + ' of segments at or above the threshold');
    fact('status', r[C.status]);
    if (D.extra.indexOf('familiarity') >= 0) fact('familiarity', fmt(r[C.familiarity]));
    if (D.extra.indexOf('top_class') >= 0) fact('class', fmt(r[C.top_class]));
    fact('sensor / recording', (r[C.sensor_id] || '–') + ' / ' + (r[C.recording_id] || '–'));
    fact('timestamp', fmt(r[C.timestamp]));
    fact('duration', fmt(r[C.duration_s], 2) + ' s, gain ' + fmt(r[C.gain_db], 0) + ' dB');
    fact('file', D.files[i] + (D.found[i] ? '' : ' (not found)'));
    box.appendChild(dl);
    var bar = el('div', {id: 'review-buttons'});
    [['leak', 'Confirmed leak (1)'], ['noleak', 'Not a leak (2)'], ['unsure', 'Unsure (3)'], ['', 'Clear (0)']].forEach(function (b) {
      var btn = el('button', {type: 'button', 'data-mark': b[0], 'aria-pressed': String((marks[r[C.path]] || '') === b[0] && b[0] !== ''), text: b[1]});
      btn.addEventListener('click', function () { mark(i, b[0]); });
      bar.appendChild(btn); bar.appendChild(document.createTextNode(' '));
    });
    box.appendChild(bar);
    box.appendChild(timeline(i));
    box.appendChild(spectrogram(m));
    box.appendChild(player(i, m));
  }
  function timeline(i) {
    var div = el('div', {cls: 'timeline', id: 'detail-timeline'}, [el('h3', {text: 'Segment leak probability over time'})]);
    var probs = D.timelines[String(i)];
    if (!probs || !probs.length) {
      div.appendChild(el('p', {cls: 'note', text: 'No segment timeline (run predict with --segments to see one).'}));
      return div;
    }
    var ns = 'http://www.w3.org/2000/svg', W = 600, H = 90, hop = D.segment_hop_s || 1;
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('preserveAspectRatio', 'none');
    var pts = probs.map(function (p, k) { return (probs.length > 1 ? k / (probs.length - 1) * W : W / 2).toFixed(1) + ',' + (H - 4 - p * (H - 8)).toFixed(1); });
    var line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' ')); line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#b3121f'); line.setAttribute('stroke-width', '1.5');
    var th = (D.decision || D.model || {}).threshold;
    if (typeof th === 'number') {
      var ty = (H - 4 - th * (H - 8)).toFixed(1), tl = document.createElementNS(ns, 'line');
      tl.setAttribute('x1', 0); tl.setAttribute('x2', W); tl.setAttribute('y1', ty); tl.setAttribute('y2', ty);
      tl.setAttribute('stroke', '#5d6778'); tl.setAttribute('stroke-dasharray', '4 3');
      svg.appendChild(tl);
    }
    svg.appendChild(line);
    div.appendChild(svg);
    div.appendChild(el('div', {cls: 'axis'}, [el('span', {text: '0 s'}), el('span', {text: 'probability 0–1' + (typeof th === 'number' ? ', dashed: threshold ' + th.toFixed(3) : '')}), el('span', {text: ((probs.length - 1) * hop + D.segment_s).toFixed(1) + ' s'})]));
    return div;
  }
  function spectrogram(m) {
    var div = el('div', {cls: 'spec', id: 'detail-spectrogram'}, [el('h3', {text: 'Spectrogram (the model\'s log-mel features)'})]);
    if (!m.spectrogram) { div.appendChild(el('p', {cls: 'note', text: m.missing ? 'Cannot read the recording: ' + m.missing + '.' : 'Not embedded: spectrograms are embedded for ' + (D.summary.spectrogram_mode === 'none' ? 'no recording' : 'called leaks only') + ' (--spectrograms ' + D.summary.spectrogram_mode + ').'})); return div; }
    div.appendChild(el('img', {src: 'data:image/png;base64,' + m.spectrogram, alt: 'log-mel spectrogram'}));
    div.appendChild(el('div', {cls: 'axis'}, [el('span', {text: m.clip[0].toFixed(1) + ' s'}), el('span', {text: 'time; rows: ' + D.mel.n_mels + ' mel bands, ' + Math.round(D.mel.fmin) + '–' + Math.round(D.mel.fmax) + ' Hz, low at the bottom'}), el('span', {text: m.clip[1].toFixed(1) + ' s'})]));
    div.appendChild(el('div', {cls: 'colourbar'}));
    div.appendChild(el('div', {cls: 'axis'}, [el('span', {text: m.db[0].toFixed(0) + ' dB'}), el('span', {text: 'mel power, dB'}), el('span', {text: m.db[1].toFixed(0) + ' dB'})]));
    return div;
  }
  function player(i, m) {
    var div = el('div', {id: 'detail-audio'}, [el('h3', {text: 'Listen'})]);
    if (m.audio) {
      var a = el('audio', {controls: '', preload: 'metadata', src: 'data:' + m.mime + ';base64,' + m.audio});
      div.appendChild(a);
      div.appendChild(el('p', {cls: 'note', text: m.clip[0].toFixed(1) + '–' + m.clip[1].toFixed(1) + ' s of ' + m.clip[2].toFixed(1) + ' s, ' + m.rate + ' Hz ' + m.mime.split('/')[1] + ', ' + (m.bytes / 1000).toFixed(0) + ' kB, peak-normalised'}));
    } else {
      var text = m.missing ? 'The recording file is missing or unreadable: ' + m.missing + ' (' + D.files[i] + ').'
        : m.capped ? 'Left out: the report\'s audio size cap (' + D.summary.media.cap_mb + ' MB) was reached before this recording.'
        : 'Not embedded: audio is embedded for ' + (D.summary.audio_mode === 'none' ? 'no recording' : 'called leaks only') + ' (--audio ' + D.summary.audio_mode + ').';
      div.appendChild(el('p', {cls: 'note', id: 'audio-note', text: text}));
    }
    return div;
  }

  // --- wiring ---------------------------------------------------------------------------
  fillSelect('f-status', distinct('status'));
  fillSelect('f-sensor', distinct('sensor_id'));
  ['f-decision', 'f-status', 'f-sensor', 'f-review'].forEach(function (id) { $(id).addEventListener('change', function () { page = 0; refresh(); }); });
  $('f-search').addEventListener('input', function () { page = 0; refresh(); });
  $('prev-page').addEventListener('click', function () { page = Math.max(0, page - 1); drawTable(); });
  $('next-page').addEventListener('click', function () { page += 1; drawTable(); });
  $('export').addEventListener('click', function () {
    var blob = new Blob([labelsCsv()], {type: 'text/csv'});
    var a = el('a', {href: URL.createObjectURL(blob), download: 'labels.csv'});
    document.body.appendChild(a); a.click(); a.remove();
    message('labels.csv: the path,label manifest that build and learn read (unsure marks are not exported)');
  });
  $('import').addEventListener('change', function (e) {
    var f = e.target.files[0];
    if (!f) return;
    var rd = new FileReader();
    rd.onload = function () { importCsv(String(rd.result)); };
    rd.readAsText(f);
    e.target.value = '';
  });
  $('clear-review').addEventListener('click', function () {
    if (window.confirm('Remove every review mark of this survey from this browser?')) { marks = {}; saveMarks(); refresh(); drawDetail(); }
  });
  document.addEventListener('keydown', function (e) {
    var tag = (e.target.tagName || '').toLowerCase();
    if (tag === 'input' || tag === 'select' || tag === 'textarea' || e.ctrlKey || e.metaKey || e.altKey) return;
    var keys = {n: [1, true], j: [1, true], p: [-1, true], k: [-1, true], ArrowDown: [1, false], ArrowUp: [-1, false]};
    if (keys[e.key]) { e.preventDefault(); step(keys[e.key][0], keys[e.key][1]); return; }
    var m = {'1': 'leak', '2': 'noleak', '3': 'unsure', '0': ''}[e.key];
    if (m !== undefined && current >= 0) { e.preventDefault(); mark(current, m); }
  });
  drawSummary();
  drawModel();
  drawSensors();
  drawHead();
  refresh();
  document.body.setAttribute('data-ready', '1');
})();
