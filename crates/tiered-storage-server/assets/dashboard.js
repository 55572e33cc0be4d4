// Tiering dashboard: reads the service's JSON API (/v1/stats, /v1/history, /v1/alerts,
// /v1/records) and draws it. No framework, no build step, nothing fetched from elsewhere.
// Data from the service is only ever written with textContent or as SVG attributes.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const TIERS = ['hot', 'warm', 'cold'];
  const TIER_KEYS = ['record_count', 'bytes', 'capacity', 'hit_rate', 'recent_hit_rate', 'hits',
    'misses', 'p50_us', 'p95_us', 'p99_us', 'writes'];
  const WINDOWS = { '15m': { ms: 15 * 60000, label: '15 minutes' }, '1h': { ms: 60 * 60000, label: 'hour' } };
  const TICKS_MS = [5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 900000, 1800000];
  const MIN_SPAN_MS = 60000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const TOKEN_KEY = 'tiered-storage.token';
  const WINDOW_KEY = 'tiered-storage.window';

  const state = {
    window: WINDOWS[sessionStorage.getItem(WINDOW_KEY)] ? sessionStorage.getItem(WINDOW_KEY) : '15m',
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    inflight: false,
    again: false,
    timer: null,
    ready: false,
    refreshes: 0,
    stats: null,
    history: null,
  };

  // ---- formatting (scripts/browser_test.py mirrors these to check the text shown) ----

  function fmtInt(v) {
    if (v === null || v === undefined) return '—';
    return Math.round(Number(v)).toLocaleString('en-US');
  }
  function fmtBytes(v) {
    if (v === null || v === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let n = Number(v);
    if (n < 1024) return Math.round(n) + ' B';
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return n.toFixed(1) + ' ' + units[i];
  }
  // Hit rates come as percentages (0–100), as the library computes them.
  function fmtRate(v) {
    if (v === null || v === undefined) return '—';
    return Number(v).toFixed(1) + ' %';
  }
  function fmtUs(v) {
    if (v === null || v === undefined) return '—';
    const us = Number(v);
    if (us < 1000) return Math.round(us) + ' µs';
    if (us < 1e6) return (us / 1000).toFixed(2) + ' ms';
    return (us / 1e6).toFixed(2) + ' s';
  }
  // Axis labels of the log-scale latency charts: powers of ten.
  function fmtUsAxis(v) {
    const us = Number(v);
    if (us < 1000) return fmtCompact(us) + ' µs';
    if (us < 1e6) return fmtCompact(us / 1000) + ' ms';
    return fmtCompact(us / 1e6) + ' s';
  }
  function fmtDuration(v) {
    if (v === null || v === undefined) return '—';
    const s = Math.round(Number(v));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }
  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function fmtTime(ms) {
    if (ms === null || ms === undefined || Number(ms) <= 0) return 'never';
    const d = new Date(Number(ms));
    return d.getUTCFullYear() + '-' + pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate()) + ' ' +
      pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes()) + ':' + pad2(d.getUTCSeconds());
  }
  function fmtClock(ms, secs) {
    const d = new Date(ms);
    return pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes()) + (secs ? ':' + pad2(d.getUTCSeconds()) : '');
  }
  function fmtBool(v) { return v ? 'running' : 'stopped'; }
  function fmtPerSec(v) {
    if (v === null || v === undefined) return '—';
    const n = Number(v);
    if (n === 0) return '0';
    if (n >= 1000) return (n / 1000).toFixed(1) + 'k';
    if (n >= 10) return n.toFixed(0);
    return n.toFixed(n >= 1 ? 1 : 2);
  }
  function fmtCompact(v) {
    const n = Number(v);
    if (n >= 1e9) return (n / 1e9).toFixed(1) + 'G';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e4) return (n / 1e3).toFixed(0) + 'k';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k';
    if (Number.isInteger(n)) return String(n);
    return n.toFixed(n >= 10 ? 0 : 2);
  }
  function fmtBytesShort(v) {
    return fmtBytes(v).replace('.0 ', ' ');
  }
  function fmtOutcome(o) {
    if (o === null || o === undefined) return '—';
    if (typeof o === 'string') return o;
    const k = Object.keys(o)[0];
    if (k === undefined) return '—';
    const v = o[k];
    return typeof v === 'number' ? k + ' ' + v : k + ': ' + String(v);
  }

  // ---- DOM helpers ----

  const byTestId = new Map();
  document.querySelectorAll('[data-testid]').forEach((el) => byTestId.set(el.dataset.testid, el));
  function $(id) { return document.getElementById(id); }

  function setFig(testid, value, fmt) {
    const el = byTestId.get(testid);
    if (!el) return;
    const v = value === undefined ? null : value;
    el.textContent = fmt(v);
    el.dataset.value = JSON.stringify(v);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function showBanner(id, text) {
    const b = $(id);
    if (text) { b.textContent = text; b.hidden = false; } else { b.textContent = ''; b.hidden = true; }
  }

  // ---- API ----

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    let resp;
    try {
      resp = await fetch(path, { headers: headers, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'network', 'cannot reach the service (' + e.message + ')');
    }
    const text = await resp.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!resp.ok) {
      const err = body && body.error ? body.error : {};
      throw new ApiError(resp.status, err.code || 'http_' + resp.status,
        err.message || (text ? text.split('\n')[0].slice(0, 200) : resp.statusText));
    }
    if (body === null) throw new ApiError(resp.status, 'bad_response', 'the response is not JSON');
    return body;
  }

  function authMessage() {
    return state.token
      ? '401 Unauthorized: the service refused this token. Enter the right token in the field at the top right.'
      : '401 Unauthorized: this service requires a bearer token. Enter it in the field at the top right.';
  }

  // ---- stats ----

  function renderStats(s) {
    for (const t of TIERS) {
      const tier = s[t] || {};
      setFig(t + '-record_count', tier.record_count, fmtInt);
      setFig(t + '-bytes', tier.bytes, fmtBytes);
      setFig(t + '-capacity', tier.capacity, fmtInt);
      setFig(t + '-hit_rate', tier.hit_rate, fmtRate);
      setFig(t + '-recent_hit_rate', tier.recent_hit_rate, fmtRate);
      setFig(t + '-hits', tier.hits, fmtInt);
      setFig(t + '-misses', tier.misses, fmtInt);
      setFig(t + '-p50_us', tier.p50_us, fmtUs);
      setFig(t + '-p95_us', tier.p95_us, fmtUs);
      setFig(t + '-p99_us', tier.p99_us, fmtUs);
      setFig(t + '-writes', tier.writes, fmtInt);
    }
    const cold = s.cold || {};
    setFig('cold-file_count', cold.file_count, fmtInt);
    setFig('cold-quarantined_files', cold.quarantined_files, fmtInt);
    setFig('total_records', s.total_records, fmtInt);
    setFig('generated_ms', s.generated_ms, fmtTime);
    setFig('alerts-active-count', (s.alerts || []).length, fmtInt);
    const a = s.archival || {};
    setFig('archival-lag_secs', a.lag_secs, fmtDuration);
    setFig('archival-records_archived', a.records_archived, fmtInt);
    setFig('archival-archive_files', a.archive_files, fmtInt);
    setFig('archival-last_archive_ms', a.last_archive_ms, fmtTime);
    const c = s.compaction || {};
    setFig('compaction-groups', c.groups, fmtInt);
    setFig('compaction-files_in', c.files_in, fmtInt);
    setFig('compaction-files_out', c.files_out, fmtInt);
    setFig('compaction-bytes_in', c.bytes_in, fmtBytes);
    setFig('compaction-bytes_out', c.bytes_out, fmtBytes);
    setFig('compaction-last_compaction_ms', c.last_compaction_ms, fmtTime);
    const m = s.maintenance || {};
    setFig('maintenance-loop_running', m.loop_running, fmtBool);
    setFig('maintenance-steps', m.steps, fmtInt);
    setFig('maintenance-failed_steps', m.failed_steps, fmtInt);
    setFig('maintenance-last_step_ms', m.last_step_ms, fmtTime);
    for (const t of TIERS) {
      const card = document.querySelector('.tier-' + t);
      if (card) card.classList.toggle('absent', !s[t]);
    }
    renderColdDays(s.cold_days || []);
    document.body.dataset.statsGeneratedMs = String(s.generated_ms);
  }

  function renderColdDays(days) {
    const body = $('cold-days-body');
    clear(body);
    const sorted = days.slice().sort((x, y) => (x.day < y.day ? 1 : x.day > y.day ? -1 : 0));
    setFig('cold_days-count', sorted.length, (n) => '(' + n + (n === 1 ? ' day)' : ' days)'));
    if (sorted.length === 0) {
      const tr = el('tr', 'empty');
      const td = el('td', null, 'No cold files yet: nothing has been archived.');
      td.colSpan = 5;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    for (const d of sorted) {
      const tr = el('tr');
      tr.dataset.day = d.day;
      const cells = [
        ['day', d.day, (v) => v],
        ['files', d.files, fmtInt],
        ['bytes', d.bytes, fmtBytes],
        ['rows', d.rows, fmtInt],
        ['live_rows', d.live_rows, fmtInt],
      ];
      for (const [key, v, fmt] of cells) {
        const td = el('td', key === 'day' ? null : 'num', fmt(v));
        td.dataset.testid = 'cold-day-' + d.day + '-' + key;
        td.dataset.value = JSON.stringify(v === undefined ? null : v);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    drawDayBars(byTestId.get('chart-cold_days'), sorted);
  }

  // ---- charts (hand-made SVG) ----

  function niceStep(range, count) {
    const raw = range / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  }

  // Steps in whole KiB / MiB / GiB for byte axes.
  function niceBytesStep(range, count) {
    let unit = 1;
    while (range / unit >= 1024 && unit < Math.pow(1024, 5)) unit *= 1024;
    return Math.max(1, niceStep(range / unit, count)) * (unit === 1 ? 1 : unit);
  }

  function svgSize(svg) {
    const r = svg.getBoundingClientRect();
    const w = Math.max(200, Math.round(r.width) || 320);
    const h = Math.max(100, Math.round(r.height) || 150);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('width', String(w));
    svg.setAttribute('height', String(h));
    return { w: w, h: h };
  }

  function emptyNote(svg, w, h, text) {
    const t = svgEl('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', class: 'empty-note' });
    t.textContent = text;
    svg.appendChild(t);
  }

  // series: [{name, cls, pts: [[t_ms, value], ...]}]; opts: {t0, t1, tick, fmt, log, yMax}
  function drawLines(svg, series, opts) {
    clear(svg);
    const size = svgSize(svg);
    const w = size.w;
    const h = size.h;
    const m = { l: 50, r: 12, t: 10, b: 22 };
    const pw = w - m.l - m.r;
    const ph = h - m.t - m.b;
    const usable = (v) => v !== null && v !== undefined && Number.isFinite(v) && (!opts.log || v > 0);
    let lo = Infinity;
    let hi = -Infinity;
    let count = 0;
    for (const s of series) {
      for (const p of s.pts) {
        if (p[0] < opts.t0 || !usable(p[1])) continue;
        lo = Math.min(lo, p[1]);
        hi = Math.max(hi, p[1]);
        count += 1;
      }
    }
    // Axis frame and time ticks are drawn even without data.
    const gGrid = svgEl('g', { class: 'grid' });
    const gAxis = svgEl('g', { class: 'axis' });
    svg.appendChild(gGrid);
    svg.appendChild(gAxis);
    const x = (t) => m.l + ((t - opts.t0) / (opts.t1 - opts.t0)) * pw;
    for (let t = Math.ceil(opts.t0 / opts.tick) * opts.tick; t <= opts.t1; t += opts.tick) {
      gGrid.appendChild(svgEl('line', { x1: x(t), x2: x(t), y1: m.t, y2: m.t + ph }));
      // A label that would cross the plot's right edge ends at the tick instead.
      const anchor = x(t) > m.l + pw - 24 ? 'end' : 'middle';
      const lab = svgEl('text', { x: x(t), y: h - 6, 'text-anchor': anchor });
      lab.textContent = fmtClock(t, opts.tick < 60000);
      gAxis.appendChild(lab);
    }
    gAxis.appendChild(svgEl('line', { class: 'baseline', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }));
    if (count === 0) {
      emptyNote(svg, w, h, 'no samples in this window yet');
      svg.dataset.points = '0';
      hoverData.delete(svg);
      return;
    }
    let ticks;
    let y;
    if (opts.log) {
      const l0 = Math.floor(Math.log10(lo));
      let l1 = Math.ceil(Math.log10(hi));
      if (l1 === l0) l1 = l0 + 1;
      y = (v) => m.t + ph - ((Math.log10(v) - l0) / (l1 - l0)) * ph;
      ticks = [];
      for (let k = l0; k <= l1; k += 1) ticks.push(Math.pow(10, k));
    } else {
      let top = opts.yMax !== undefined ? opts.yMax : hi;
      if (!(top > 0)) top = 1;
      let step = (opts.bytes ? niceBytesStep : niceStep)(top, 4);
      if (opts.integer) step = Math.max(1, Math.round(step));
      top = Math.ceil(top / step) * step;
      const yTop = top;
      // Clamped to the plot, so a value above a fixed top (hit rate) cannot draw outside it.
      y = (v) => m.t + ph - (Math.min(Math.max(v, 0), yTop) / yTop) * ph;
      ticks = [];
      for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
    }
    for (const v of ticks) {
      gGrid.appendChild(svgEl('line', { x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v) }));
      const lab = svgEl('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end' });
      lab.textContent = opts.fmt(v);
      gAxis.appendChild(lab);
    }
    let drawn = 0;
    for (const s of series) {
      let d = '';
      let pen = false;
      let last = null;
      for (const p of s.pts) {
        if (p[0] < opts.t0) continue;
        if (!usable(p[1])) { pen = false; continue; }
        const px = x(p[0]).toFixed(1);
        const py = y(p[1]).toFixed(1);
        d += (pen ? 'L' : 'M') + px + ' ' + py + ' ';
        pen = true;
        last = p;
        drawn += 1;
      }
      if (!d) continue;
      const path = svgEl('path', { d: d.trim(), class: 'line ' + s.cls });
      path.dataset.series = s.name;
      const title = svgEl('title', {});
      title.textContent = s.name + ': ' + opts.fmt(last[1]) + ' at ' + fmtTime(last[0]) + ' UTC';
      path.appendChild(title);
      svg.appendChild(path);
      svg.appendChild(svgEl('circle', { cx: x(last[0]).toFixed(1), cy: y(last[1]).toFixed(1), r: 2.5, class: 'pt ' + s.cls }));
    }
    svg.dataset.points = String(drawn);
    hoverData.set(svg, { series: series, x: x, y: y, t0: opts.t0, t1: opts.t1, fmt: opts.fmt,
      left: m.l, right: m.l + pw, top: m.t, bottom: m.t + ph, usable: usable });
  }

  // ---- hover readout: a vertical rule and the values of the nearest sample ----

  const hoverData = new WeakMap();
  const tip = el('div', 'chart-tip');
  tip.hidden = true;
  tip.setAttribute('role', 'tooltip');
  document.body.appendChild(tip);

  function nearest(pts, t) {
    let best = null;
    for (const p of pts) if (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
    return best;
  }

  function hoverMove(ev) {
    const svg = ev.currentTarget;
    const h = hoverData.get(svg);
    let rule = svg.querySelector('line.hover');
    if (!h) { tip.hidden = true; return; }
    const r = svg.getBoundingClientRect();
    const px = ev.clientX - r.left;
    if (px < h.left || px > h.right) { hoverLeave(ev); return; }
    const t = h.t0 + ((px - h.left) / (h.right - h.left)) * (h.t1 - h.t0);
    const rows = [];
    let at = null;
    for (const s of h.series) {
      const p = nearest(s.pts.filter((q) => q[0] >= h.t0 && h.usable(q[1])), t);
      if (!p) continue;
      if (at === null || Math.abs(p[0] - t) < Math.abs(at - t)) at = p[0];
      rows.push([s.name, s.cls, h.fmt(p[1])]);
    }
    if (!rows.length) { hoverLeave(ev); return; }
    if (!rule) {
      rule = svgEl('line', { class: 'hover' });
      svg.appendChild(rule);
    }
    const rx = h.x(at).toFixed(1);
    rule.setAttribute('x1', rx);
    rule.setAttribute('x2', rx);
    rule.setAttribute('y1', h.top);
    rule.setAttribute('y2', h.bottom);
    clear(tip);
    tip.appendChild(el('div', 'tip-time', fmtTime(at) + ' UTC'));
    for (const [name, cls, v] of rows) {
      const row = el('div', 'tip-row');
      row.appendChild(el('span', 'tip-key ' + cls, name));
      row.appendChild(el('span', 'tip-val', v));
      tip.appendChild(row);
    }
    tip.hidden = false;
    const tw = tip.offsetWidth;
    tip.style.left = Math.round(ev.clientX + 14 + tw > window.innerWidth ? ev.clientX - 14 - tw : ev.clientX + 14) + 'px';
    tip.style.top = Math.round(ev.clientY + 14) + 'px';
  }

  function hoverLeave(ev) {
    tip.hidden = true;
    const rule = ev.currentTarget.querySelector('line.hover');
    if (rule) rule.remove();
  }

  document.querySelectorAll('svg[data-testid^="chart-"]').forEach((svg) => {
    if (svg.dataset.testid === 'chart-cold_days') return;
    svg.addEventListener('mousemove', hoverMove);
    svg.addEventListener('mouseleave', hoverLeave);
  });

  function drawDayBars(svg, days) {
    if (!svg) return;
    clear(svg);
    const size = svgSize(svg);
    const w = size.w;
    const h = size.h;
    const m = { l: 50, r: 12, t: 10, b: 22 };
    const pw = w - m.l - m.r;
    const ph = h - m.t - m.b;
    const shown = days.slice(0, 14).reverse();
    const gGrid = svgEl('g', { class: 'grid' });
    const gAxis = svgEl('g', { class: 'axis' });
    svg.appendChild(gGrid);
    svg.appendChild(gAxis);
    gAxis.appendChild(svgEl('line', { class: 'baseline', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }));
    if (shown.length === 0) {
      emptyNote(svg, w, h, 'no cold partitions yet');
      svg.dataset.points = '0';
      return;
    }
    let top = Math.max.apply(null, shown.map((d) => Number(d.bytes) || 0));
    if (!(top > 0)) top = 1;
    const step = niceBytesStep(top, 3);
    top = Math.ceil(top / step) * step;
    const y = (v) => m.t + ph - (v / top) * ph;
    for (let v = 0; v <= top + step / 2; v += step) {
      gGrid.appendChild(svgEl('line', { x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v) }));
      const lab = svgEl('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end' });
      lab.textContent = fmtBytesShort(v);
      gAxis.appendChild(lab);
    }
    const slot = pw / Math.max(shown.length, 4);
    const bw = Math.min(48, slot * 0.7);
    shown.forEach((d, i) => {
      const cx = m.l + slot * (i + 0.5);
      const top0 = y(Number(d.bytes) || 0);
      const bar = svgEl('rect', { x: (cx - bw / 2).toFixed(1), y: top0.toFixed(1), width: bw.toFixed(1),
        height: Math.max(1, m.t + ph - top0).toFixed(1), class: 'bar' });
      const title = svgEl('title', {});
      title.textContent = d.day + ': ' + fmtInt(d.files) + ' files, ' + fmtBytes(d.bytes) + ', ' + fmtInt(d.live_rows) + ' live rows';
      bar.appendChild(title);
      svg.appendChild(bar);
      const lab = svgEl('text', { x: cx, y: h - 6, 'text-anchor': 'middle' });
      lab.textContent = String(d.day).slice(5);
      gAxis.appendChild(lab);
    });
    svg.dataset.points = String(shown.length);
  }

  const TIER_CHARTS = {
    record_count: { fmt: fmtCompact, integer: true },
    bytes: { fmt: fmtBytesShort, bytes: true },
    hit_rate: { fmt: (v) => Math.round(v) + '%', yMax: 100 },
    reads_per_sec: { fmt: fmtPerSec },
    writes_per_sec: { fmt: fmtPerSec },
    p50_us: { fmt: fmtUsAxis, log: true },
    p95_us: { fmt: fmtUsAxis, log: true },
    p99_us: { fmt: fmtUsAxis, log: true },
  };
  const STORE_CHARTS = {
    records_archived_per_sec: { fmt: fmtPerSec, name: 'archived/s' },
    archival_lag_secs: { fmt: (v) => fmtDuration(v).replace(/ 0 s$/, ''), name: 'lag', integer: true },
    compaction_files_in: { fmt: fmtCompact, name: 'files in', integer: true },
  };

  function renderHistory(h) {
    const w = WINDOWS[state.window];
    const samples = (h && Array.isArray(h.samples)) ? h.samples : [];
    const lastT = samples.length ? samples[samples.length - 1].t_ms : Date.now();
    const statsT = state.stats ? state.stats.generated_ms : 0;
    const t1 = Math.max(lastT, statsT || 0);
    // The window, or less while the service has not been sampling that long (at least 1 min).
    const first = samples.length ? samples[0].t_ms : t1;
    const t0 = Math.max(t1 - w.ms, Math.min(first, t1 - MIN_SPAN_MS));
    const tick = TICKS_MS.find((k) => (t1 - t0) / k <= 5) || 3600000;
    for (const key in TIER_CHARTS) {
      const svg = byTestId.get('chart-' + key);
      const series = TIERS.map((t) => ({
        name: t,
        cls: 'tier-' + t,
        pts: samples.filter((s) => s[t]).map((s) => [s.t_ms, s[t][key]]),
      }));
      drawLines(svg, series, Object.assign({ t0: t0, t1: t1, tick: tick }, TIER_CHARTS[key]));
    }
    for (const key in STORE_CHARTS) {
      const svg = byTestId.get('chart-' + key);
      const series = [{ name: STORE_CHARTS[key].name, cls: 'store', pts: samples.map((s) => [s.t_ms, s[key]]) }];
      drawLines(svg, series, Object.assign({ t0: t0, t1: t1, tick: tick }, STORE_CHARTS[key]));
    }
    const inWindow = samples.filter((s) => s.t_ms >= t0).length;
    const info = byTestId.get('history-info');
    info.textContent = inWindow + ' samples' + (h && h.interval_secs ? ', every ' + h.interval_secs + ' s' : '') +
      (t1 - t0 < w.ms - 1000 ? ' · since ' + fmtClock(first, true) + ' UTC' : '');
    info.dataset.value = String(inWindow);
  }

  // ---- alerts ----

  function alertRow(a, active) {
    const tr = el('tr', 'alert-row');
    tr.appendChild(el('td', null, '')).appendChild(el('span', 'sev sev-' + String(a.severity || '').toLowerCase(), a.severity));
    tr.appendChild(el('td', null, a.kind));
    tr.appendChild(el('td', null, a.tier_name));
    tr.appendChild(el('td', 'mono', a.subject || '—'));
    tr.appendChild(el('td', 'msg', a.message));
    tr.appendChild(el('td', 'nowrap', fmtTime(a.first_seen_ms)));
    tr.appendChild(el('td', 'nowrap', active ? fmtTime(a.last_seen_ms) : fmtTime(a.resolved_ms)));
    tr.appendChild(el('td', 'num', fmtInt(a.occurrences)));
    return tr;
  }

  function renderAlerts(al) {
    const groups = [['alerts-active-body', al.active || [], true, 'No active alerts.'],
      ['alerts-history-body', (al.history || []).slice().reverse().slice(0, 20), false, 'No resolved alerts yet.']];
    for (const [id, list, active, none] of groups) {
      const body = $(id);
      clear(body);
      body.dataset.count = String(list.length);
      if (list.length === 0) {
        const tr = el('tr', 'empty');
        const td = el('td', null, none);
        td.colSpan = 8;
        tr.appendChild(td);
        body.appendChild(tr);
      }
      for (const a of list) body.appendChild(alertRow(a, active));
    }
  }

  // ---- recent records ----

  function renderRecent(r) {
    const body = $('recent-body');
    clear(body);
    const list = (r && r.records) || [];
    body.dataset.count = String(list.length);
    if (list.length === 0) {
      const tr = el('tr', 'empty');
      const td = el('td', null, 'No records yet.');
      td.colSpan = 6;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    for (const rec of list) {
      const tr = el('tr', 'clickable');
      tr.dataset.id = String(rec.id);
      tr.title = 'Look up record ' + rec.id;
      const base = (rec.scored_candidate && rec.scored_candidate.base) || {};
      tr.appendChild(el('td', 'num', rec.id));
      const sig = el('td', 'mono ellipsis', rec.transaction_signature || '—');
      if (rec.transaction_signature) sig.title = rec.transaction_signature;
      tr.appendChild(sig);
      const mint = el('td', 'mono ellipsis', base.mint || '—');
      if (base.mint) mint.title = base.mint;
      tr.appendChild(mint);
      tr.appendChild(el('td', 'nowrap', fmtOutcome(rec.actual_outcome)));
      tr.appendChild(el('td', 'nowrap', fmtTime(rec.timestamp_decision_made)));
      tr.appendChild(el('td', 'num', rec.scored_candidate ? rec.scored_candidate.predicted_score : '—'));
      body.appendChild(tr);
    }
  }

  // ---- lookup ----

  async function lookup(raw) {
    const q = raw.trim();
    const status = $('lookup-status');
    const out = $('lookup-result');
    const set = (st, text) => {
      status.textContent = text;
      status.dataset.state = st;
      status.className = 'lookup-status ' + st;
    };
    out.hidden = true;
    out.textContent = '';
    if (!q) { set('error', 'Enter a record id or a transaction signature.'); return; }
    const byId = /^-?[0-9]+$/.test(q);
    const path = byId ? '/v1/records/' + q : '/v1/records/by-signature/' + encodeURIComponent(q);
    const what = byId ? 'id ' + q : 'signature ' + q;
    set('loading', 'Looking up ' + what + '…');
    try {
      const rec = await api(path);
      set('found', 'Found record ' + rec.id + ' (by ' + (byId ? 'id' : 'signature') + ').');
      out.textContent = JSON.stringify(rec, null, 2);
      out.hidden = false;
    } catch (e) {
      if (e.status === 404) set('not-found', 'Not found: no record with ' + what + '.');
      else if (e.status === 401) { set('error', authMessage()); showBanner('auth-message', authMessage()); }
      else set('error', 'Error' + (e.status ? ' ' + e.status : '') + ' (' + e.code + '): ' + e.message);
    }
  }

  // ---- refresh loop ----

  function setStatus(text, kind) {
    const s = $('status');
    s.textContent = text;
    s.dataset.state = kind;
    s.className = 'status ' + kind;
  }

  function markReady() {
    if (state.ready) return;
    state.ready = true;
    performance.mark('dashboard-first-render');
    document.body.setAttribute('data-ready', performance.now().toFixed(1));
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = null;
    if ($('auto-refresh').checked) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function handleError(e, what) {
    if (e.status === 401) {
      showBanner('auth-message', authMessage());
      setStatus('Unauthorized: a token is required.', 'unauthorized');
      document.body.classList.add('locked');
      if (document.activeElement === document.body) $('token-input').focus();
      return true;
    }
    showBanner('error-message', 'Could not load ' + what + ': ' +
      (e.status ? 'HTTP ' + e.status + ' (' + e.code + ') ' : '') + e.message);
    return false;
  }

  async function refresh() {
    if (state.inflight) { state.again = true; return; }
    state.inflight = true;
    clearTimeout(state.timer);
    const started = performance.now();
    let failed = false;
    try {
      const stats = await api('/v1/stats');
      state.stats = stats;
      renderStats(stats);
      showBanner('auth-message', '');
      document.body.classList.remove('locked');
      markReady();
      const win = state.window;
      const results = await Promise.allSettled([
        api('/v1/history?window=' + win),
        api('/v1/alerts'),
        api('/v1/records/recent?limit=20'),
      ]);
      const names = ['history', 'alerts', 'recent records'];
      const errs = [];
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') {
          if (i === 0) { if (win === state.window) { state.history = r.value; renderHistory(r.value); } }
          else if (i === 1) renderAlerts(r.value);
          else renderRecent(r.value);
        } else {
          errs.push([r.reason, names[i]]);
        }
      });
      if (errs.length) {
        failed = true;
        handleError(errs[0][0], errs[0][1]);
      } else {
        showBanner('error-message', '');
      }
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      const took = Math.round(performance.now() - started);
      if (!failed) {
        setStatus('Updated ' + fmtTime(stats.generated_ms) + ' UTC · ' + took + ' ms' +
          ($('auto-refresh').checked ? ' · every 5 s' : ' · paused'), 'ok');
      }
    } catch (e) {
      failed = true;
      markReady();
      if (!handleError(e, 'stats')) setStatus('Service unreachable or failing; retrying.', 'error');
    } finally {
      state.inflight = false;
      if (state.again) { state.again = false; refresh(); } else schedule();
    }
  }

  // ---- wiring ----

  function setWindow(win) {
    if (!WINDOWS[win]) return;
    state.window = win;
    sessionStorage.setItem(WINDOW_KEY, win);
    document.querySelectorAll('.seg-btn').forEach((b) => b.classList.toggle('active', b.dataset.window === win));
    $('window-label').textContent = WINDOWS[win].label;
    if (state.history) renderHistory(state.history);
  }

  function tokenIndicator() {
    const input = $('token-input');
    input.placeholder = state.token ? 'token set (session)' : 'bearer token';
    $('token-clear').hidden = !state.token;
  }

  document.querySelectorAll('.seg-btn').forEach((b) => b.addEventListener('click', () => {
    setWindow(b.dataset.window);
    refresh();
  }));
  $('refresh-now').addEventListener('click', () => refresh());
  $('auto-refresh').addEventListener('change', () => { if (!state.inflight) schedule(); });
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('token-input');
    state.token = input.value.trim();
    input.value = '';
    if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
    else sessionStorage.removeItem(TOKEN_KEY);
    tokenIndicator();
    showBanner('auth-message', '');
    refresh();
  });
  $('token-clear').addEventListener('click', () => {
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    tokenIndicator();
    refresh();
  });
  $('lookup-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    lookup($('lookup-input').value);
  });
  $('recent-body').addEventListener('click', (ev) => {
    const tr = ev.target.closest('tr[data-id]');
    if (!tr) return;
    $('lookup-input').value = tr.dataset.id;
    lookup(tr.dataset.id);
  });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (state.history) renderHistory(state.history);
      if (state.stats) renderColdDays(state.stats.cold_days || []);
    }, 150);
  });

  setWindow(state.window);
  tokenIndicator();
  refresh();
}());
