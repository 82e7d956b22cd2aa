// Switchyard console: plain JavaScript over the HTTP API of the server that
// served it. Every view is rebuilt from the API's answers; views that show
// the catalog follow it with blocking queries (index= and wait=), so
// changes appear without a reload. Text from the server is always set as
// text, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'switchyard.token';
const PAGE_SIZE = 100;
const BALANCERS = ['weighted_random', 'round_robin', 'least_loaded', 'consistent_hash'];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  abort: null, // aborts the current view's requests when another opens
};

// ---- DOM helpers -------------------------------------------------------

// el builds an element: attrs sets properties (class, text, on* handlers,
// everything else as attributes); children are nodes or strings.
function el(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// fill sets n's attributes and appends its children, for el and svg.
function fill(n, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.setAttribute('class', v); // className is read-only on SVG elements
    else if (k === 'text') n.textContent = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (k === 'value') n.value = v;
    else if (k === 'background') n.style.backgroundColor = v; // CSSOM: allowed by the page's CSP
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

function say(text, kind) {
  const box = document.getElementById('message');
  box.replaceChildren();
  if (!text) return;
  box.className = kind === 'error' ? 'error' : 'ok';
  box.append(el('p', { text }));
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

// ---- API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body, signal) {
  const headers = {};
  if (state.token) headers['X-Switchyard-Token'] = state.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method, headers, signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    throw new ApiError(resp.status, data && data.code, (data && data.error) || text.trim() || resp.statusText);
  }
  return { data, index: Number(resp.headers.get('X-Switchyard-Index') || 0) };
}

// explain turns a failure into words a person can act on.
function explain(err) {
  if (err instanceof ApiError) {
    if (err.status === 401) return `Not allowed without a valid token (401): ${err.message}. Enter a token at the top of the page.`;
    if (err.status === 403) return `Your token may not do this (403): ${err.message}`;
    return `The server refused (${err.status}${err.code ? ' ' + err.code : ''}): ${err.message}`;
  }
  return `No answer from the server: ${err.message}`;
}

// act runs a change and reports its outcome in the message area.
async function act(what, fn) {
  say(`${what}…`);
  try {
    const done = await fn();
    say(done || `${what}: done.`);
    return true;
  } catch (err) {
    say(explain(err), 'error');
    return false;
  }
}

// watch follows path with blocking queries until signal aborts, calling
// onData with each new answer.
async function watch(path, signal, onData) {
  let index = 0;
  let failures = 0;
  while (!signal.aborted) {
    const sep = path.includes('?') ? '&' : '?';
    try {
      const r = await api('GET', index ? `${path}${sep}index=${index}&wait=30s` : path, undefined, signal);
      failures = 0;
      if (signal.aborted) return;
      if (r.index !== index || index === 0) onData(r.data);
      // Nothing new: do not spin. Something new: at most about three
      // redraws a second, however fast the catalog changes.
      await sleep(r.index <= index ? 250 : 300, signal);
      index = r.index;
    } catch (err) {
      if (signal.aborted) return;
      failures++;
      say(explain(err), 'error');
      if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) return;
      await sleep(Math.min(5000, 500 * failures), signal);
    }
  }
}

// poll calls fn now and every ms until signal aborts.
async function poll(ms, signal, fn) {
  while (!signal.aborted) {
    try { await fn(); } catch (err) { if (!signal.aborted) say(explain(err), 'error'); }
    await sleep(ms, signal);
  }
}

const enc = encodeURIComponent;

function fmtLocality(l) {
  if (!l) return '—';
  const parts = [l.region, l.datacenter, l.unit].filter(Boolean);
  return parts.length ? parts.join(' / ') : '—';
}

function fmtAge(ms) {
  if (ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms ago`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s ago`;
  return `${Math.round(ms / 60000)} min ago`;
}

function heading(view, text, crumbs) {
  if (crumbs) {
    view.append(el('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' },
      el('ol', {}, crumbs.map(([label, href]) => el('li', {}, href ? el('a', { href, text: label }) : label)))));
  }
  const h = el('h1', { text, tabindex: '-1' });
  view.append(h);
  return h;
}

function table(caption, columns) {
  const t = el('table', {}, el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))));
  const body = el('tbody');
  t.append(body);
  return { table: t, body };
}

// ---- pages -------------------------------------------------------------

async function namespacesPage(view, signal) {
  const h = heading(view, 'Namespaces');
  const intro = el('p', { class: 'muted', text: 'A lookup in a namespace that has no usable instance of a service borrows from its fallback, and so on up the chain.' });
  const { table: t, body } = table('Namespaces and their fallback chains', ['Namespace', 'Description', 'Fallback chain', 'Change fallback']);
  const newName = el('input', { id: 'ns-name', name: 'name', required: true, pattern: '[a-z0-9]([a-z0-9-]*[a-z0-9])?', maxlength: '63', spellcheck: 'false' });
  const newFallback = el('select', { id: 'ns-fallback', name: 'fallback' }, el('option', { value: '', text: '(none)' }));
  const newDesc = el('input', { id: 'ns-description', name: 'description' });
  const create = el('form', {
    novalidate: true,
    onsubmit: (e) => {
      e.preventDefault();
      const name = newName.value.trim();
      act(`Creating namespace ${name}`, async () => {
        await api('PUT', `/v1/namespaces/${enc(name)}`, { fallback: newFallback.value, description: newDesc.value });
        newName.value = '';
        newDesc.value = '';
        return `Namespace ${name} created${newFallback.value ? `, falling back to ${newFallback.value}` : ''}.`;
      });
    },
  }, el('fieldset', {},
    el('legend', { text: 'Create a namespace' }),
    el('label', { for: 'ns-name', text: 'Name (a DNS label)' }), newName,
    el('label', { for: 'ns-fallback', text: 'Falls back to' }), newFallback,
    el('label', { for: 'ns-description', text: 'Description' }), newDesc,
    el('button', { type: 'submit', id: 'ns-create', text: 'Create namespace' })));
  view.append(intro, t, create);
  h.focus();
  let last = '';
  await watch('/v1/namespaces', signal, (data) => {
    const list = data.namespaces || [];
    const key = JSON.stringify(list);
    if (key === last) return;
    last = key;
    const byName = new Map(list.map((n) => [n.name, n]));
    const chosen = newFallback.value;
    newFallback.replaceChildren(el('option', { value: '', text: '(none)' }), list.map((n) => el('option', { value: n.name, text: n.name })));
    newFallback.value = byName.has(chosen) ? chosen : '';
    body.replaceChildren(...list.map((n) => {
      const chain = [n.name];
      for (let p = n.fallback, seen = new Set([n.name]); p && !seen.has(p); p = (byName.get(p) || {}).fallback) {
        chain.push(p);
        seen.add(p);
      }
      const selId = `fallback-${n.name}`;
      const others = list.filter((o) => o.name !== n.name).map((o) => o.name);
      // The current fallback stays a choice even when this token may not
      // list it, so that saving another field never clears it.
      if (n.fallback && !others.includes(n.fallback)) others.push(n.fallback);
      const sel = el('select', { id: selId, name: 'fallback' },
        el('option', { value: '', text: '(none)' }),
        others.map((o) => el('option', { value: o, text: o })));
      sel.value = n.fallback || '';
      const save = el('button', {
        type: 'submit', text: 'Save', 'aria-label': `Save the fallback of ${n.name}`,
      });
      const form = el('form', {
        class: 'inline',
        onsubmit: (e) => {
          e.preventDefault();
          act(`Setting the fallback of ${n.name}`, async () => {
            await api('PUT', `/v1/namespaces/${enc(n.name)}`, { fallback: sel.value });
            return sel.value ? `${n.name} now falls back to ${sel.value}.` : `${n.name} now has no fallback.`;
          });
        },
      }, el('label', { for: selId, class: 'visually-hidden', text: `Fallback of ${n.name}` }), sel, save);
      return el('tr', {},
        el('th', { scope: 'row' }, el('a', { href: `#/ns/${n.name}`, text: n.name })),
        el('td', { text: n.description || '' }),
        el('td', { text: chain.join(' → ') }),
        el('td', {}, form));
    }));
  });
}

async function servicesPage(view, signal, ns) {
  const h = heading(view, `Services in ${ns}`, [['Namespaces', '#/namespaces'], [ns]]);
  const { table: t, body } = table(`Services of namespace ${ns}, healthy instances over all`, ['Service', 'Healthy / total', 'By datacenter (healthy / total)', 'Protect threshold', 'State']);
  view.append(t);
  h.focus();
  await watch(`/v1/namespaces/${enc(ns)}/services`, signal, (data) => {
    const list = data.services || [];
    if (!list.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '5', text: 'No services (or none your token may read).' })));
      return;
    }
    body.replaceChildren(...list.map((s) => {
      const dcs = Object.entries(s.datacenters || {}).sort(([a], [b]) => a.localeCompare(b))
        .map(([dc, c]) => el('span', { class: 'chip' + (c.healthy < c.instances ? ' warn' : '') }, `${dc || '(none)'} ${c.healthy}/${c.instances}`));
      return el('tr', {},
        el('th', { scope: 'row' }, el('a', { href: `#/ns/${ns}/svc/${s.name}`, text: s.name })),
        el('td', { text: `${s.healthy} / ${s.instances}` }),
        el('td', {}, dcs.length ? dcs : '—'),
        el('td', { text: String(s.protect_threshold) }),
        el('td', { class: s.protected ? 'bad' : '' , text: s.protected ? 'protected: lookups include unhealthy instances' : 'normal' }));
    }));
  });
}

// patch changes an instance's weight or traffic switch, and nothing else
// (health and liveness stay: a re-registration would reset them), only if
// nobody changed it since the page showed it.
async function patch(base, inst, changes) {
  try {
    await api('PATCH', `${base}/instances/${enc(inst.id)}`, Object.assign({ if_index: inst.modify_index }, changes));
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      throw new ApiError(409, err.code, `${inst.id} changed since the page showed it (the list now shows it as it is); check it and try again`);
    }
    throw err;
  }
}

async function servicePage(view, signal, ns, svc) {
  const h = heading(view, svc, [['Namespaces', '#/namespaces'], [ns, `#/ns/${ns}`], [svc]]);
  const base = `/v1/namespaces/${enc(ns)}/services/${enc(svc)}`;

  // Settings.
  const protect = el('input', { id: 'set-protect', type: 'number', min: '0', max: '1', step: 'any', required: true });
  const ratio = el('input', { id: 'set-ratio', type: 'number', min: '0', max: '1', step: 'any', required: true });
  const balancer = el('select', { id: 'set-balancer' }, BALANCERS.map((b) => el('option', { value: b, text: b })));
  const settings = el('form', {
    class: 'settings',
    onsubmit: (e) => {
      e.preventDefault();
      act(`Saving the settings of ${svc}`, async () => {
        await api('PUT', base, {
          protect_threshold: Number(protect.value), min_healthy_ratio: Number(ratio.value), balancer: balancer.value,
        });
        return `Settings of ${svc} saved: protect threshold ${protect.value}, locality spill-over below ${ratio.value} healthy, ${balancer.value}.`;
      });
    },
  },
  el('fieldset', {},
    el('legend', { text: 'Service settings' }),
    el('label', { for: 'set-protect', text: 'Protect threshold (0–1)' }), protect,
    el('label', { for: 'set-ratio', text: 'Locality spill-over: minimum healthy share of a level (0–1)' }), ratio,
    el('label', { for: 'set-balancer', text: 'Balancer' }), balancer,
    el('button', { type: 'submit', text: 'Save settings' })));

  // Filters and paging.
  const fDC = el('select', { id: 'f-dc' }, el('option', { value: '', text: 'all' }));
  const fHealth = el('select', { id: 'f-health' },
    el('option', { value: '', text: 'all' }), el('option', { value: 'healthy', text: 'healthy' }),
    el('option', { value: 'unhealthy', text: 'unhealthy' }), el('option', { value: 'disabled', text: 'disabled' }));
  const fTag = el('input', { id: 'f-tag', type: 'search', placeholder: 'tag' });
  const prev = el('button', { type: 'button', id: 'page-prev', text: 'Previous page' });
  const next = el('button', { type: 'button', id: 'page-next', text: 'Next page' });
  const range = el('span', { id: 'range', 'aria-live': 'polite' });
  const filters = el('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
    el('label', { for: 'f-dc', text: 'Datacenter' }), fDC,
    el('label', { for: 'f-health', text: 'Health' }), fHealth,
    el('label', { for: 'f-tag', text: 'Tag' }), fTag,
    prev, next, range);

  const { table: t, body } = table(`Instances of ${ns}/${svc}`, ['Instance', 'Address', 'Locality', 'Weight', 'Traffic', 'Health', 'Last heartbeat', 'History and check', 'Remove']);
  const field = (id, label, attrs) => [el('label', { for: id, text: label }), el('input', Object.assign({ id, name: id }, attrs || {}))];
  const register = el('form', {
    novalidate: true,
    onsubmit: (e) => {
      e.preventDefault();
      const v = (id) => register.querySelector(`#${id}`).value.trim();
      const id = v('reg-id');
      const port = Number(v('reg-port'));
      const weight = v('reg-weight') === '' ? 100 : Number(v('reg-weight'));
      if (!id || !v('reg-address') || !Number.isInteger(port) || port < 1 || port > 65535) {
        say('Give the instance an id, an address and a port from 1 to 65535.', 'error');
        return;
      }
      act(`Registering ${id}`, async () => {
        await api('PUT', `${base}/instances/${enc(id)}`, {
          address: v('reg-address'), port, weight, ephemeral: false,
          locality: { region: v('reg-region'), datacenter: v('reg-datacenter'), unit: v('reg-unit') },
        });
        register.reset();
        return `${id} registered in ${ns}/${svc} (persistent: it stays until removed).`;
      });
    },
  }, el('fieldset', {},
    el('legend', { text: 'Register an instance (persistent)' }),
    field('reg-id', 'Instance id', { required: true, spellcheck: 'false' }),
    field('reg-address', 'Address', { required: true, spellcheck: 'false' }),
    field('reg-port', 'Port', { type: 'number', min: '1', max: '65535', required: true }),
    field('reg-weight', 'Weight (0–10000)', { type: 'number', min: '0', max: '10000', placeholder: '100' }),
    field('reg-region', 'Region'), field('reg-datacenter', 'Datacenter'), field('reg-unit', 'Unit'),
    el('button', { type: 'submit', id: 'reg-submit', text: 'Register' })));
  const chartBox = el('figure', { class: 'chart', id: 'service-chart' });
  view.append(settings, el('h2', { text: 'The last hour' }), chartBox, el('h2', { text: 'Instances' }), filters, t, register);
  h.focus();

  let instances = [];
  let ages = {};
  let page = 0;
  let settingsLoaded = false;
  const expanded = new Set(); // instances whose check is shown

  const filtered = () => instances.filter((i) => {
    if (fDC.value && (i.locality || {}).datacenter !== fDC.value) return false;
    if (fHealth.value === 'healthy' && !(i.healthy && i.enabled)) return false;
    if (fHealth.value === 'unhealthy' && i.healthy) return false;
    if (fHealth.value === 'disabled' && i.enabled) return false;
    if (fTag.value.trim() && !(i.tags || []).includes(fTag.value.trim())) return false;
    return true;
  });

  function row(inst) {
    const wId = `w-${inst.id}`;
    const weight = el('input', { id: wId, type: 'number', min: '0', max: '10000', step: '1', required: true, value: String(inst.weight), class: 'weight' });
    const wForm = el('form', {
      class: 'inline',
      novalidate: true, // the page says what is wrong, in the message area
      onsubmit: (e) => {
        e.preventDefault();
        const w = Number(weight.value);
        if (weight.value.trim() === '' || !Number.isInteger(w) || w < 0 || w > 10000) {
          say(`The weight of ${inst.id} must be a whole number from 0 to 10000.`, 'error');
          return;
        }
        act(`Setting the weight of ${inst.id}`, async () => {
          await patch(base, inst, { weight: w });
          return `Weight of ${inst.id} is now ${w}.`;
        });
      },
    }, el('label', { for: wId, class: 'visually-hidden', text: `Weight of ${inst.id}` }), weight,
    el('button', { type: 'submit', id: `save-${inst.id}`, text: 'Save', 'aria-label': `Save the weight of ${inst.id}` }));
    const toggle = el('button', {
      type: 'button',
      id: `toggle-${inst.id}`,
      text: inst.enabled ? 'Disable' : 'Enable',
      'aria-label': `${inst.enabled ? 'Disable' : 'Enable'} ${inst.id}`,
      onclick: () => act(`${inst.enabled ? 'Disabling' : 'Enabling'} ${inst.id}`, async () => {
        await patch(base, inst, { enabled: !inst.enabled });
        return inst.enabled ? `${inst.id} is disabled: listed, but given no traffic.` : `${inst.id} takes traffic again.`;
      }),
    });
    const remove = el('button', {
      type: 'button', id: `remove-${inst.id}`, text: 'Deregister', 'aria-label': `Deregister ${inst.id}`,
      onclick: () => {
        if (!window.confirm(`Deregister ${inst.id} from ${ns}/${svc}? Callers stop being sent to it.`)) return;
        act(`Deregistering ${inst.id}`, async () => {
          await api('DELETE', `${base}/instances/${enc(inst.id)}`);
          return `${inst.id} deregistered.`;
        });
      },
    });
    const detail = el('td', { colspan: '9', class: 'detail' });
    const detailRow = el('tr', { hidden: true }, detail);
    const showCheck = async () => {
        try {
          const [r, hist] = await Promise.all([api('GET', `${base}/instances/${enc(inst.id)}/check`, undefined, signal),
            api('GET', `${base}/instances/${enc(inst.id)}/history`, undefined, signal)]);
          const c = r.data || {};
          detail.replaceChildren(...instanceTimeline(hist.data.events || [], inst), el('dl', {},
            el('dt', { text: 'Check' }), el('dd', { text: (inst.check && inst.check.type) || 'none' }),
            el('dt', { text: 'Checked by' }), el('dd', { text: c.checked_by || '—' }),
            el('dt', { text: 'Last result' }), el('dd', { text: c.last_ok === undefined ? '—' : (c.last_ok ? 'passing' : 'failing') }),
            el('dt', { text: 'Output' }), el('dd', {}, el('code', { text: c.output || c.reason || '—' })),
            el('dt', { text: 'Checked at' }), el('dd', { text: c.checked_at || '—' })));
        } catch (err) {
          if (signal.aborted) return;
          detail.replaceChildren(el('p', { class: 'bad', text: explain(err) }));
        }
        detailRow.hidden = false;
        check.setAttribute('aria-expanded', 'true');
    };
    const check = el('button', {
      type: 'button', id: `check-${inst.id}`, text: 'Show', 'aria-expanded': 'false', 'aria-label': `Show the history and the check of ${inst.id}`,
      onclick: () => {
        if (!detailRow.hidden) {
          detailRow.hidden = true;
          check.setAttribute('aria-expanded', 'false');
          expanded.delete(inst.id);
          return;
        }
        expanded.add(inst.id);
        showCheck();
      },
    });
    if (expanded.has(inst.id)) showCheck(); // stays open across redraws
    const health = (inst.healthy ? 'healthy' : 'unhealthy') + (inst.enabled ? '' : ', disabled');
    return [el('tr', { 'data-id': inst.id },
      el('th', { scope: 'row', text: inst.id }),
      el('td', { text: `${inst.address}:${inst.port}` }),
      el('td', { text: fmtLocality(inst.locality) }),
      el('td', {}, wForm),
      el('td', {}, toggle),
      el('td', { class: inst.healthy && inst.enabled ? 'good' : 'bad', text: health }),
      el('td', { class: 'age', text: inst.ephemeral ? fmtAge(ages[inst.id]) : 'checked by a server' }),
      el('td', {}, check),
      el('td', {}, remove)), detailRow];
  }

  function render() {
    const list = filtered();
    const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const from = page * PAGE_SIZE;
    const shown = list.slice(from, from + PAGE_SIZE);
    range.textContent = list.length
      ? `Showing ${from + 1}–${from + shown.length} of ${list.length}` + (list.length !== instances.length ? ` (filtered from ${instances.length})` : '')
      : (instances.length ? `No instance matches (of ${instances.length})` : 'No instances');
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    // A redraw keeps the focused control, and what is being typed in it.
    const active = document.activeElement;
    const activeId = active && body.contains(active) ? active.id : '';
    const typed = activeId && active.tagName === 'INPUT' ? active.value : null;
    body.replaceChildren(...shown.flatMap(row));
    if (activeId) {
      const again = document.getElementById(activeId);
      if (again) {
        if (typed !== null) again.value = typed;
        again.focus();
      }
    }
  }

  function updateDCs() {
    const dcs = [...new Set(instances.map((i) => (i.locality || {}).datacenter || ''))].filter(Boolean).sort();
    const cur = fDC.value;
    fDC.replaceChildren(el('option', { value: '', text: 'all' }), ...dcs.map((d) => el('option', { value: d, text: d })));
    fDC.value = dcs.includes(cur) ? cur : '';
  }

  for (const f of [fDC, fHealth]) f.addEventListener('change', () => { page = 0; render(); });
  fTag.addEventListener('input', () => { page = 0; render(); });
  prev.addEventListener('click', () => { page--; render(); });
  next.addEventListener('click', () => { page++; render(); });

  poll(10000, signal, async () => {
    const r = await api('GET', `${base}/history`, undefined, signal);
    chartBox.replaceChildren(...serviceChart(r.data.samples || [], svc));
  });
  poll(3000, signal, async () => {
    const r = await api('GET', `${base}/heartbeats`, undefined, signal);
    ages = r.data.age_ms || {};
    for (const cell of body.querySelectorAll('tr[data-id] td.age')) {
      const id = cell.parentElement.getAttribute('data-id');
      const inst = instances.find((i) => i.id === id);
      if (inst && inst.ephemeral) cell.textContent = fmtAge(ages[id]);
    }
  });
  await watch(`${base}/instances`, signal, (data) => {
    instances = data.instances || [];
    if (!settingsLoaded || document.activeElement === null || !settings.contains(document.activeElement)) {
      const s = data.settings || {};
      protect.value = s.protect_threshold;
      ratio.value = s.min_healthy_ratio;
      balancer.value = s.balancer || 'weighted_random';
      settingsLoaded = true;
    }
    updateDCs();
    render();
  });
}

// heat gives a light background for an RTT (ms) relative to the largest:
// green when near, red when far; the text stays dark on it.
function heat(ms, max) {
  const f = max > 0 ? Math.min(1, ms / max) : 0;
  const hue = Math.round(120 * (1 - f));
  return `hsl(${hue}, 70%, 85%)`;
}

// serverRole says what a server is: leader or voter; a read server (never
// votes); a standby (may vote, waits for a voter to replace); or none
// (known to gossip only).
function serverRole(m) {
  if (m.server_role === 'read') return m.role === 'none' ? 'read (not joined)' : 'read';
  if (m.role === 'nonvoter') return 'standby';
  return m.role;
}

async function clusterPage(view, signal) {
  const h = heading(view, 'Cluster');
  const { table: mt, body: mb } = table('Servers as the answering server sees them', ['Server', 'Raft role', 'Gossip status', 'RTT', 'HTTP', 'Raft', 'Gossip', 'Locality']);
  const matrixBox = el('div', { id: 'rtt' });
  view.append(mt, el('h2', { text: 'Round-trip time between datacenters' }),
    el('p', { class: 'muted', text: 'Each row is measured by a server of that datacenter (gossip probes), or set with --datacenter-rtt. Lookups order other regions by it.' }),
    matrixBox);
  h.focus();
  poll(3000, signal, async () => {
    const r = await api('GET', '/v1/cluster/members', undefined, signal);
    const ms = r.data.members || [];
    mb.replaceChildren(...ms.map((m) => el('tr', {},
      el('th', { scope: 'row', text: m.id + (m.self ? ' (this server)' : '') }),
      el('td', { text: serverRole(m) }),
      el('td', { class: m.status === 'alive' ? 'good' : 'bad', text: m.status }),
      el('td', { text: m.rtt_ms ? `${m.rtt_ms.toFixed(2)} ms` : '—' }),
      el('td', { text: m.http_addr || '—' }), el('td', { text: m.raft_addr || '—' }), el('td', { text: m.gossip_addr || '—' }),
      el('td', { text: fmtLocality(m.locality) }))));
  });
  poll(5000, signal, async () => {
    const r = await api('GET', '/v1/cluster/rtt', undefined, signal);
    const dcs = r.data.datacenters || [];
    const rtt = r.data.rtt_ms || {};
    if (!dcs.length) {
      matrixBox.replaceChildren(el('p', { text: 'No datacenter is known: start servers with --datacenter.' }));
      return;
    }
    let max = 0;
    for (const row of Object.values(rtt)) for (const v of Object.values(row)) max = Math.max(max, v);
    const t = el('table', { class: 'heat' },
      el('caption', { text: 'Milliseconds from the row’s datacenter to the column’s; — where no server measured it' }),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'from \\ to' }), dcs.map((d) => el('th', { scope: 'col', text: d })))),
      el('tbody', {}, dcs.map((from) => el('tr', {},
        el('th', { scope: 'row', text: from }),
        dcs.map((to) => {
          const v = (rtt[from] || {})[to];
          return v === undefined
            ? el('td', { class: 'unknown', text: '—' })
            : el('td', { background: heat(v, max), text: v.toFixed(1) });
        })))));
    matrixBox.replaceChildren(t);
  });
}

async function drillsPage(view, signal) {
  const h = heading(view, 'Drills');
  const list = el('div', { id: 'drills' });
  view.append(el('p', { class: 'muted', text: 'The latest reports of registry drill, newest first.' }), list);
  h.focus();
  const urls = [];
  signal.addEventListener('abort', () => urls.forEach((u) => URL.revokeObjectURL(u)), { once: true });
  try {
    const r = await api('GET', '/v1/drills', undefined, signal);
    if (!r.data.configured) {
      list.replaceChildren(el('p', { text: 'This server keeps no drill reports: start it with --drill-reports DIR, the folder registry drill writes to.' }));
      return;
    }
    const drills = r.data.drills || [];
    if (!drills.length) {
      list.replaceChildren(el('p', { text: 'No drill report yet.' }));
      return;
    }
    list.replaceChildren(...drills.map((d) => {
      const figure = el('figure', { hidden: true });
      const show = el('button', {
        type: 'button', text: 'Show timeline', disabled: !d.timeline, 'aria-label': `Show timeline of ${d.name}`,
        onclick: async () => {
          try {
            const resp = await fetch(`/v1/drills/${enc(d.name)}/timeline`, { signal, headers: state.token ? { 'X-Switchyard-Token': state.token } : {} });
            if (!resp.ok) throw new ApiError(resp.status, '', (await resp.text()).trim());
            const url = URL.createObjectURL(await resp.blob());
            urls.push(url);
            figure.replaceChildren(el('img', { src: url, alt: `Timeline of drill ${d.name}: calls per second by serving datacenter, before, during and after the fault` }),
              el('figcaption', { text: `Timeline of ${d.name}` }));
            figure.hidden = false;
            show.disabled = true;
          } catch (err) {
            say(explain(err), 'error');
          }
        },
      });
      return el('section', { class: 'drill', 'aria-labelledby': `drill-${d.name}` },
        el('h2', { id: `drill-${d.name}`, text: `${d.scenario} — ${d.time}` }),
        el('p', { class: d.passed ? 'good' : 'bad', text: d.passed ? 'Passed' : `Failed: ${d.failures.length} criteria` }),
        d.failures.length ? el('ul', {}, d.failures.map((f) => el('li', { text: f }))) : null,
        show, figure);
    }));
  } catch (err) {
    say(explain(err), 'error');
  }
}


// ---- topology ------------------------------------------------------------

// svg builds an SVG element, as el does an HTML one.
function svg(tag, attrs, ...children) {
  return fill(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, children);
}

const ROLE_FILL = { leader: '#173f73', voter: '#2b5797', standby: '#7a8799', read: '#9fb8e0', 'read (not joined)': '#d5deeb', none: '#d5deeb' };

// topologyModel groups servers and instance counts into regions →
// datacenters → units, each level with its instances and healthy ones.
function topologyModel(members, localities) {
  const regions = new Map();
  const dcOf = (region, dc) => {
    const r = region || '(no region)';
    const d = dc || '(no datacenter)';
    if (!regions.has(r)) regions.set(r, { name: r, instances: 0, healthy: 0, dcs: new Map() });
    const reg = regions.get(r);
    if (!reg.dcs.has(d)) reg.dcs.set(d, { name: d, region: r, instances: 0, healthy: 0, units: new Map(), servers: [] });
    return [reg, reg.dcs.get(d)];
  };
  for (const l of localities) {
    const [reg, dc] = dcOf(l.region, l.datacenter);
    const u = l.unit || '(no unit)';
    const unit = dc.units.get(u) || { name: u, instances: 0, healthy: 0 };
    unit.instances += l.instances; unit.healthy += l.healthy;
    dc.units.set(u, unit);
    dc.instances += l.instances; dc.healthy += l.healthy;
    reg.instances += l.instances; reg.healthy += l.healthy;
  }
  for (const m of members) {
    const [, dc] = dcOf(m.locality && m.locality.region, m.locality && m.locality.datacenter);
    dc.servers.push(m);
  }
  const byName = (a, b) => a.name.localeCompare(b.name);
  return [...regions.values()].sort(byName).map((r) => ({ ...r,
    dcs: [...r.dcs.values()].sort(byName).map((d) => ({ ...d, units: [...d.units.values()].sort(byName),
      servers: d.servers.sort((a, b) => a.id.localeCompare(b.id)) })) }));
}

// counted says how many instances a level holds and how healthy they are.
function counted(n) {
  return n.instances ? `${n.instances} instances, ${Math.round((100 * n.healthy) / n.instances)}% healthy` : 'no instances';
}

// topologyPicture draws the model: a box per region, a box per
// datacenter inside it with its servers (coloured by Raft role, outlined
// red unless alive) and its units (instances, healthy share as a bar),
// lines between datacenters labelled with their round-trip time.
function topologyPicture(regions, rtt) {
  const DC_W = 230, PAD = 16, SERVER_H = 24, UNIT_H = 30, HEAD = 44;
  let x = PAD;
  const boxes = new Map();
  const parts = [];
  let height = 0;
  for (const r of regions) {
    const rx = x;
    let dx = rx + PAD;
    let rh = 0;
    const inner = [];
    for (const d of r.dcs) {
      const serverRows = Math.max(1, Math.ceil(d.servers.length / 2));
      const h = HEAD + serverRows * SERVER_H + 8 + Math.max(1, d.units.length) * UNIT_H + 8;
      const y = 40 + PAD;
      boxes.set(d.name, { x: dx, y, w: DC_W, h });
      const g = svg('g', { class: 'dc', 'data-dc': d.name, 'data-instances': d.instances, 'data-healthy': d.healthy });
      g.append(svg('rect', { x: dx, y, width: DC_W, height: h, rx: 8, fill: '#fff', stroke: '#8a99ad' }),
        svg('text', { x: dx + 10, y: y + 18, 'font-weight': 'bold', text: d.name }),
        svg('text', { x: dx + 10, y: y + 34, 'font-size': 11, fill: '#444', text: counted(d) }));
      d.servers.forEach((m, i) => {
        const sx = dx + 10 + (i % 2) * 108, sy = y + HEAD + Math.floor(i / 2) * SERVER_H;
        const role = serverRole(m);
        const dark = role === 'leader' || role === 'voter';
        g.append(svg('g', { class: 'server', 'data-server': m.id, 'data-role': role, 'data-status': m.status },
          svg('rect', { x: sx, y: sy, width: 102, height: 20, rx: 4, fill: ROLE_FILL[role] || '#d5deeb',
            stroke: m.status === 'alive' ? 'none' : '#c00', 'stroke-width': 2 }),
          svg('text', { x: sx + 6, y: sy + 14, 'font-size': 11, fill: dark ? '#fff' : '#1a1a1a', text: `${m.id} · ${role}` }),
          svg('title', { text: `${m.id}: ${role}, ${m.status}${m.rtt_ms ? `, RTT ${m.rtt_ms.toFixed(1)} ms` : ''}` })));
      });
      let uy = y + HEAD + serverRows * SERVER_H + 8;
      if (!d.units.length) g.append(svg('text', { x: dx + 10, y: uy + 16, 'font-size': 11, fill: '#444', text: 'no instances' }));
      for (const u of d.units) {
        const f = u.instances ? u.healthy / u.instances : 0;
        g.append(svg('g', { class: 'unit', 'data-unit': `${d.name}/${u.name}`, 'data-instances': u.instances, 'data-healthy': u.healthy },
          svg('text', { x: dx + 10, y: uy + 11, 'font-size': 11, text: `${u.name}: ${u.healthy} of ${u.instances} healthy` }),
          svg('rect', { x: dx + 10, y: uy + 15, width: DC_W - 20, height: 8, fill: u.instances ? '#e15759' : '#eee' }),
          svg('rect', { x: dx + 10, y: uy + 15, width: (DC_W - 20) * f, height: 8, fill: '#59a14f' })));
        uy += UNIT_H;
      }
      inner.push(g);
      rh = Math.max(rh, h);
      dx += DC_W + PAD;
    }
    const label = `${r.name} — ${counted(r)}`;
    const rw = Math.max(dx - rx, 20 + 7 * label.length);
    dx = rx + rw;
    parts.push(svg('g', { class: 'region', 'data-region': r.name },
      svg('rect', { x: rx, y: 24, width: rw, height: rh + 2 * PAD + 16, rx: 10, fill: '#f3f6fb', stroke: '#b7c4d8' }),
      svg('text', { x: rx + 10, y: 44, 'font-weight': 'bold', fill: '#41536b', text: label }),
      inner));
    x = dx + PAD;
    height = Math.max(height, rh + 2 * PAD + 60);
  }
  // RTT between datacenters: an arc over the boxes, labelled.
  const names = [...boxes.keys()];
  const arcs = [];
  let lift = 0;
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const v = ((rtt || {})[names[i]] || {})[names[j]] ?? ((rtt || {})[names[j]] || {})[names[i]];
      if (v === undefined) continue;
      const a = boxes.get(names[i]), b = boxes.get(names[j]);
      const x1 = a.x + a.w / 2, x2 = b.x + b.w / 2, yb = Math.max(a.y + a.h, b.y + b.h) + 14;
      const depth = 26 + 16 * lift++;
      arcs.push(svg('g', { class: 'rtt', 'data-from': names[i], 'data-to': names[j], 'data-ms': v.toFixed(1) },
        svg('path', { d: `M${x1},${a.y + a.h} C${x1},${yb + depth} ${x2},${yb + depth} ${x2},${b.y + b.h}`, fill: 'none', stroke: '#c79100', 'stroke-width': 1.5 }),
        svg('text', { x: (x1 + x2) / 2, y: yb + depth * 0.75 + 4, 'text-anchor': 'middle', 'font-size': 11, fill: '#6b5200', text: `${v.toFixed(1)} ms` })));
    }
  }
  if (lift) height += 40 + 16 * lift;
  const width = Math.max(x, 400);
  const summary = regions.map((r) => `${r.name}: ${r.dcs.map((d) => `${d.name} (${d.servers.length} servers, ${counted(d)})`).join(', ')}`).join('; ');
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-labelledby': 'topology-title topology-desc', 'font-family': 'system-ui, sans-serif', 'font-size': 12 },
    svg('title', { id: 'topology-title', text: 'Topology: regions, datacenters, units, servers and instances' }),
    svg('desc', { id: 'topology-desc', text: summary }),
    parts, arcs);
}

async function topologyPage(view, signal) {
  const h = heading(view, 'Topology');
  const legend = el('ul', { class: 'legend' },
    Object.entries({ leader: 'Raft leader', voter: 'Raft voter', standby: 'standby (may vote)', read: 'read server (never votes)' })
      .map(([role, text]) => el('li', {}, el('span', { class: 'swatch', background: ROLE_FILL[role] }), text)),
    el('li', {}, el('span', { class: 'swatch', background: '#59a14f' }), 'healthy instances'),
    el('li', {}, el('span', { class: 'swatch', background: '#e15759' }), 'unhealthy'),
    el('li', {}, el('span', { class: 'swatch', background: '#c79100' }), 'round-trip time between datacenters'));
  const picture = el('figure', { class: 'topology' });
  const { table: tt, body: tb } = table('The same, as a table', ['Region', 'Datacenter', 'Servers', 'Unit', 'Instances', 'Healthy']);
  view.append(el('p', { class: 'muted', text: 'Where the servers run and what they hold, updated every 3 s. Instances are those your token may read.' }),
    legend, picture, tt);
  h.focus();
  poll(3000, signal, async () => {
    const [m, t, r] = await Promise.all([api('GET', '/v1/cluster/members', undefined, signal),
      api('GET', '/v1/topology', undefined, signal), api('GET', '/v1/cluster/rtt', undefined, signal)]);
    const regions = topologyModel(m.data.members || [], t.data.localities || []);
    picture.replaceChildren(topologyPicture(regions, r.data.rtt_ms),
      el('figcaption', { text: `Catalog index ${t.data.index}; ${regions.length} regions, ${regions.reduce((n, x) => n + x.dcs.length, 0)} datacenters.` }));
    const rows = [];
    for (const reg of regions) {
      for (const d of reg.dcs) {
        const servers = d.servers.map((s) => `${s.id} (${serverRole(s)}, ${s.status})`).join(', ') || '—';
        const units = d.units.length ? d.units : [{ name: '—', instances: 0, healthy: 0 }];
        for (const u of units) {
          rows.push(el('tr', {}, el('th', { scope: 'row', text: reg.name }), el('td', { text: d.name }), el('td', { text: servers }),
            el('td', { text: u.name }), el('td', { text: String(u.instances) }), el('td', { text: String(u.healthy) })));
        }
      }
    }
    tb.replaceChildren(...rows);
  });
}

// ---- charts --------------------------------------------------------------

const HOUR = 3600 * 1000;

// serviceChart draws a service's last hour: its instance count (left axis)
// and healthy share (right axis, %), each value holding until the next
// sample, up to now; and says the same in words.
function serviceChart(samples, svc) {
  const W = 720, H = 180, L = 48, R = 52, T = 14, B = 30;
  const now = Date.now();
  const pts = samples.map((s) => ({ t: Math.max(Date.parse(s.time), now - HOUR), n: s.instances, h: s.healthy }));
  if (!pts.length) {
    return [el('p', { class: 'muted', id: 'chart-empty', text: 'No change this server has seen in the last hour.' })];
  }
  const maxN = Math.max(1, ...pts.map((p) => p.n));
  const x = (t) => L + ((t - (now - HOUR)) / HOUR) * (W - L - R);
  const yN = (n) => T + (1 - n / maxN) * (H - T - B);
  const yS = (f) => T + (1 - f) * (H - T - B);
  const step = (val) => {
    let d = '';
    pts.forEach((p, i) => {
      const next = i + 1 < pts.length ? pts[i + 1].t : now;
      d += `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${val(p).toFixed(1)} L${x(next).toFixed(1)},${val(p).toFixed(1)} `;
    });
    return d;
  };
  const share = (p) => (p.n ? p.h / p.n : 1);
  const ticks = [];
  for (let m = 60; m >= 0; m -= 15) {
    const tx = x(now - m * 60000);
    ticks.push(svg('line', { x1: tx, x2: tx, y1: H - B, y2: H - B + 4, stroke: '#444' }),
      svg('text', { x: tx, y: H - B + 16, 'text-anchor': 'middle', text: m ? `−${m} min` : 'now' }));
  }
  const last = pts[pts.length - 1];
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': 'chart-title chart-desc',
    'font-family': 'system-ui, sans-serif', 'font-size': 11, class: 'service-chart', 'data-samples': pts.length },
  svg('title', { id: 'chart-title', text: `${svc}: instances and healthy share over the last hour` }),
  svg('desc', { id: 'chart-desc', text: `${pts.length} changes; now ${last.n} instances, ${last.h} healthy.` }),
  svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: '#444' }),
  svg('line', { x1: L, x2: L, y1: T, y2: H - B, stroke: '#444' }),
  svg('line', { x1: W - R, x2: W - R, y1: T, y2: H - B, stroke: '#444' }),
  svg('text', { x: L - 6, y: yN(maxN) + 4, 'text-anchor': 'end', text: String(maxN) }),
  svg('text', { x: L - 6, y: yN(0) + 4, 'text-anchor': 'end', text: '0' }),
  svg('text', { x: W - R + 6, y: yS(1) + 4, text: '100%' }),
  svg('text', { x: W - R + 6, y: yS(0) + 4, text: '0%' }),
  svg('text', { transform: `translate(12 ${(H - B + T) / 2}) rotate(-90)`, 'text-anchor': 'middle', text: 'instances' }),
  svg('text', { transform: `translate(${W - 8} ${(H - B + T) / 2}) rotate(90)`, 'text-anchor': 'middle', text: 'healthy share' }),
  ticks,
  svg('path', { class: 'count', d: step((p) => yN(p.n)), fill: 'none', stroke: '#2b5797', 'stroke-width': 2 }),
  svg('path', { class: 'share', d: step((p) => yS(share(p))), fill: 'none', stroke: '#59a14f', 'stroke-width': 2, 'stroke-dasharray': '5 3' }),
  // Each sample as a point, so that changes of the last minutes show.
  pts.map((p) => [svg('circle', { cx: x(p.t), cy: yN(p.n), r: 3, fill: '#2b5797' }, svg('title', { text: `${new Date(p.t).toISOString()}: ${p.n} instances, ${p.h} healthy` })),
    svg('circle', { cx: x(p.t), cy: yS(share(p)), r: 3, fill: '#59a14f' })]));
  return [chart, el('ul', { class: 'legend' },
    el('li', {}, el('span', { class: 'swatch', background: '#2b5797' }), 'instances (left axis)'),
    el('li', {}, el('span', { class: 'swatch', background: '#59a14f' }), 'healthy share (right axis, dashed)')),
  el('figcaption', { text: `Now ${last.n} instances, ${last.h} healthy; ${pts.length} sample${pts.length === 1 ? '' : 's'} this hour, as this server saw them change.` })];
}

const EVENT_WORDS = {
  registered: 'registered', updated: 'registered again with changes', deregistered: 'deregistered',
  healthy: 'healthy again', enabled: 'given traffic again', disabled: 'taken out of traffic', weight: 'weight changed',
};

// instanceTimeline draws an instance's last events on a line of time, its
// state between them coloured (healthy, unhealthy, out of traffic), and
// lists them in words.
function instanceTimeline(events, inst) {
  if (!events.length) return [el('p', { class: 'muted', text: 'No event this server has seen (it keeps the last 16 per instance, since it started).' })];
  const W = 640, H = 54, L = 10, R = 10;
  const now = Date.now();
  const t0 = Date.parse(events[0].time);
  const span = Math.max(now - t0, 1000);
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  let healthy = true, enabled = true;
  const segs = [], marks = [];
  events.forEach((e, i) => {
    if (e.kind === 'registered' || e.kind === 'updated') healthy = true;
    if (e.kind === 'healthy') healthy = true;
    if (e.kind === 'unhealthy') healthy = false;
    if (e.kind === 'enabled') enabled = true;
    if (e.kind === 'disabled') enabled = false;
    const from = Date.parse(e.time), to = i + 1 < events.length ? Date.parse(events[i + 1].time) : now;
    const colour = e.kind === 'deregistered' ? '#ccc' : !healthy ? '#e15759' : !enabled ? '#9c9c9c' : '#59a14f';
    segs.push(svg('rect', { x: x(from), y: 18, width: Math.max(x(to) - x(from), 1), height: 14, fill: colour }));
    marks.push(svg('g', { class: 'event', 'data-kind': e.kind },
      svg('line', { x1: x(from), x2: x(from), y1: 14, y2: 36, stroke: '#222' }),
      svg('title', { text: `${e.time}: ${e.kind}` })));
  });
  const words = (e) => e.kind === 'unhealthy'
    ? (e.ephemeral ? 'unhealthy: no heartbeat for its TTL' : 'unhealthy: its check failed')
    : e.kind === 'weight' ? `weight set to ${e.weight || 0}` : EVENT_WORDS[e.kind] || e.kind;
  const fmt = (t) => new Date(t).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  const flaps = events.filter((e) => e.kind === 'unhealthy').length;
  const summary = el('p', { class: 'flaps', text: flaps
    ? `Unhealthy ${flaps} time${flaps === 1 ? '' : 's'} since ${fmt(t0)}.`
    : `Never unhealthy since ${fmt(t0)}.` });
  return [summary, svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'timeline', 'aria-label': `Timeline of ${inst.id}: ${events.map(words).join(', ')}`,
    'font-family': 'system-ui, sans-serif', 'font-size': 10 },
  segs, marks,
  svg('text', { x: L, y: 48, text: fmt(t0) }), svg('text', { x: W - R, y: 48, 'text-anchor': 'end', text: 'now' })),
  el('ol', { class: 'events' }, events.map((e) => el('li', { 'data-kind': e.kind }, el('time', { datetime: e.time, text: fmt(e.time) }), ` — ${words(e)} (index ${e.index})`)))];
}

// ---- tokens --------------------------------------------------------------

async function tokensPage(view, signal) {
  const h = heading(view, 'Tokens');
  view.append(el('p', { class: 'muted', text: 'Needs an admin:* token. A new token’s secret is shown once, here; the server keeps only its hash.' }));
  const rules = el('textarea', { id: 'tok-rules', name: 'rules', rows: '3', cols: '40', spellcheck: 'false', placeholder: 'read:default\nwrite:payments/checkout-' });
  const desc = el('input', { id: 'tok-description', name: 'description' });
  const secretBox = el('div', { id: 'tok-secret', 'aria-live': 'polite' });
  const { table: t, body } = table('Tokens, by accessor', ['Accessor', 'Description', 'Rules', 'Created', 'Revoke']);
  const load = async () => {
    const r = await api('GET', '/v1/acl/tokens', undefined, signal);
    body.replaceChildren(...(r.data.tokens || []).map((tok) => el('tr', { 'data-accessor': tok.accessor_id },
      el('th', { scope: 'row' }, el('code', { text: tok.accessor_id })),
      el('td', { text: tok.description || '' }),
      el('td', { text: (tok.rules || []).join(' ') || '(no rules)' }),
      el('td', { text: tok.create_time && !tok.create_time.startsWith('0001') ? tok.create_time.replace('T', ' ').slice(0, 19) + ' UTC' : '—' }),
      el('td', {}, tok.accessor_id === 'anonymous' ? '—' : el('button', {
        type: 'button', text: 'Revoke', 'aria-label': `Revoke token ${tok.accessor_id}`, id: `revoke-${tok.accessor_id}`,
        onclick: () => {
          if (!window.confirm(`Revoke token ${tok.accessor_id} (${tok.description || 'no description'})? Whoever holds it loses access at once.`)) return;
          act(`Revoking ${tok.accessor_id}`, async () => {
            await api('DELETE', `/v1/acl/tokens/${enc(tok.accessor_id)}`);
            await load();
            return `Token ${tok.accessor_id} revoked.`;
          });
        },
      })))));
  };
  const form = el('form', {
    novalidate: true,
    onsubmit: (e) => {
      e.preventDefault();
      const list = rules.value.split(/\s+/).filter(Boolean);
      if (!list.length) {
        say('Give at least one rule, such as read:default.', 'error');
        return;
      }
      act('Creating a token', async () => {
        const r = await api('POST', '/v1/acl/tokens', { rules: list, description: desc.value });
        secretBox.replaceChildren(el('p', {}, 'Secret of the new token (shown this once): ', el('code', { id: 'tok-new-secret', text: r.data.secret })));
        rules.value = '';
        desc.value = '';
        await load();
        return `Token ${r.data.accessor_id} created.`;
      });
    },
  }, el('fieldset', {},
    el('legend', { text: 'Create a token' }),
    el('label', { for: 'tok-rules', text: 'Rules, one per line (ACCESS:NAMESPACE[/SERVICE-PREFIX])' }), rules,
    el('label', { for: 'tok-description', text: 'Description' }), desc,
    el('button', { type: 'submit', id: 'tok-create', text: 'Create token' })));
  view.append(form, secretBox, t);
  h.focus();
  try {
    await load();
  } catch (err) {
    say(explain(err), 'error');
  }
}

// ---- router and token ----------------------------------------------------

const routes = [
  [/^#?\/?$/, namespacesPage],
  [/^#\/topology$/, topologyPage],
  [/^#\/tokens$/, tokensPage],
  [/^#\/namespaces$/, namespacesPage],
  [/^#\/ns\/([a-z0-9-]+)$/, servicesPage],
  [/^#\/ns\/([a-z0-9-]+)\/svc\/([a-z0-9-]+)$/, servicePage],
  [/^#\/cluster$/, clusterPage],
  [/^#\/drills$/, drillsPage],
];

function route() {
  // In-page anchors (the skip link) are not pages.
  if (location.hash && !location.hash.startsWith('#/')) return;
  if (state.abort) state.abort.abort();
  state.abort = new AbortController();
  const view = document.getElementById('view');
  view.replaceChildren();
  say('');
  const hash = location.hash || '#/';
  const section = hash.startsWith('#/cluster') ? 'cluster' : hash.startsWith('#/drills') ? 'drills'
    : hash.startsWith('#/topology') ? 'topology' : hash.startsWith('#/tokens') ? 'tokens' : 'namespaces';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, page] of routes) {
    const m = hash.match(re);
    if (m) {
      page(view, state.abort.signal, ...m.slice(1));
      return;
    }
  }
  heading(view, 'Not found');
  view.append(el('p', {}, 'No such page. ', el('a', { href: '#/namespaces', text: 'Namespaces' })));
}

async function showToken() {
  const stateBox = document.getElementById('token-state');
  if (!state.token) {
    stateBox.textContent = 'no token: read-only where the cluster allows it';
    return;
  }
  try {
    const r = await api('GET', '/v1/acl/self');
    const rules = (r.data.rules || []).join(' ') || 'no rules';
    stateBox.textContent = `token ${r.data.accessor_id.slice(0, 8)}… (${rules})`;
  } catch (err) {
    stateBox.textContent = 'token not accepted';
    say(explain(err), 'error');
  }
}

function init() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = input.value.trim();
    input.value = '';
    if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
    else sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    route();
  });
  document.getElementById('token-forget').addEventListener('click', () => {
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    route();
  });
  window.addEventListener('hashchange', route);
  showToken();
  route();
}

init();
