// wa-server dashboard: vanilla JavaScript, no build step, no dependency.
// It calls the public HTTP API of this server with an App token kept in sessionStorage.
'use strict';

(() => {
  const TOKEN_KEY = 'wa-server.app-token';
  const POLL_MS = 1500;
  const LIST_LIMIT = 200;
  const MESSAGES_LIMIT = 25;

  const MIME_TYPES = {
    image: ['image/jpeg', 'image/png', 'image/webp'],
    video: ['video/mp4', 'video/3gpp'],
    audio: ['audio/ogg', 'audio/mpeg', 'audio/mp4', 'audio/aac', 'audio/amr'],
    document: ['application/pdf', 'text/plain', 'text/csv', 'application/zip', 'application/octet-stream',
      'application/msword', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
      'application/vnd.ms-excel', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
      'application/vnd.ms-powerpoint', 'application/vnd.openxmlformats-officedocument.presentationml.presentation'],
    sticker: ['image/webp'],
  };
  const MEDIA_TYPES = Object.keys(MIME_TYPES);
  const VCARD_TEMPLATE = 'BEGIN:VCARD\nVERSION:3.0\nFN:Support\nTEL;type=CELL;waid=15550002222:+1 555 000 2222\nEND:VCARD';

  const state = {
    token: null,
    devices: [],
    listKey: '',
    selectedId: null,
    selected: null,
    qrCode: null,
    qrExpiresAt: null,
    pairExpiresAt: null,
    messagesKey: '',
    deliveriesKey: '',
    replyTo: null,
    showDestroyed: false,
    deliveryFilter: '',
    polling: false,
    timers: [],
    generation: 0,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const byTestId = (id) => $(`[data-testid="${id}"]`);

  /** Builds an element: h('td', {class: 'x', dataset: {id: 1}}, 'text', child). Text is never parsed as HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'onclick') el.addEventListener('click', v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** An API failure: the server's error envelope, or what stands for it. */
  class ApiError extends Error {
    constructor(status, code, message, requestId, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId || null;
      this.details = details || null;
    }
  }

  /** Calls the API; resolves to {status, data, requestId, headers}, rejects with ApiError. */
  async function api(method, path, body, extraHeaders) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${state.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    Object.assign(headers, extraHeaders || {});
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiError(0, 'network_error', `The server could not be reached (${e.message}).`, null);
    }
    const requestId = res.headers.get('x-request-id');
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (!res.ok) {
      const err = json && json.error;
      if (err && err.code) {
        throw new ApiError(res.status, err.code, err.message || '', json.request_id || requestId, err.details);
      }
      throw new ApiError(res.status, `http_${res.status}`, (text || res.statusText || 'request failed').slice(0, 300), requestId);
    }
    return { status: res.status, data: json ? json.data : null, requestId, headers: res.headers };
  }

  /** Shows an error (code, message, request id, details) in an alert box. */
  function showError(box, err) {
    if (!box) return;
    if (!(err instanceof ApiError)) {
      err = new ApiError(0, 'client_error', err && err.message ? err.message : String(err), null);
    }
    const meta = [];
    if (err.status) meta.push(`HTTP ${err.status}`);
    meta.push(h('span', {}, 'request_id ', h('code', { 'data-testid': 'error-request-id' }, err.requestId || '—')));
    if (err.details) {
      for (const [k, v] of Object.entries(err.details)) {
        meta.push(h('span', {}, `${k}: `, h('code', {}, typeof v === 'string' ? v : JSON.stringify(v))));
      }
    }
    const metaEl = h('div', { class: 'err-meta' });
    meta.forEach((m, i) => {
      if (i) metaEl.append(' · ');
      metaEl.append(m);
    });
    box.replaceChildren(
      h('div', {},
        h('span', { class: 'err-code', 'data-testid': 'error-code' }, err.code),
        h('span', { 'data-testid': 'error-message' }, err.message)),
      metaEl,
    );
    box.dataset.code = err.code;
    box.hidden = false;
  }

  function clearBox(box) {
    if (!box) return;
    box.hidden = true;
    box.replaceChildren();
    delete box.dataset.code;
  }

  function showOk(box, ...content) {
    box.replaceChildren(...content);
    box.hidden = false;
  }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function timeCell(iso) {
    return h('td', { class: 'nowrap', title: iso || '' }, fmtTime(iso));
  }

  function badge(status, testid) {
    return h('span', { class: `badge s-${status}`, 'data-testid': testid }, (status || '').replace(/_/g, ' '));
  }

  function secondsLeft(iso) {
    if (!iso) return 0;
    return Math.max(0, Math.round((new Date(iso).getTime() - Date.now()) / 1000));
  }

  function fmtSeconds(s) {
    return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s` : `${s} s`;
  }

  function shortId(id) {
    return id ? `${id.slice(0, 8)}…` : '';
  }

  async function withBusy(button, fn) {
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      return await fn();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.textContent = label;
      if (state.selected) applyButtons();
    }
  }

  // ---------------------------------------------------------------- session

  async function signIn(token, errorBox) {
    state.token = token;
    try {
      await api('GET', '/devices?limit=1');
    } catch (e) {
      state.token = null;
      showError(errorBox, e);
      return false;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    clearBox(errorBox);
    $('#signin-view').hidden = true;
    $('#app-view').hidden = false;
    $('#session').hidden = false;
    $('#token-hint').textContent = `${token.slice(0, 6)}…${token.slice(-4)}`;
    startPolling();
    return true;
  }

  function signOut(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopPolling();
    state.generation += 1;
    Object.assign(state, {
      token: null, devices: [], listKey: '', selectedId: null, selected: null,
      qrCode: null, qrExpiresAt: null, pairExpiresAt: null, messagesKey: '', deliveriesKey: '',
      replyTo: null,
    });
    $('#device-list').replaceChildren();
    $('#messages-body').replaceChildren();
    $('#deliveries-body').replaceChildren();
    $$('.alert').forEach(clearBox);
    $('#device-detail').hidden = true;
    $('#send-panel').hidden = true;
    $('#messages-panel').hidden = true;
    window.waGroups.reset(true);
    $('#no-selection').hidden = false;
    $('#app-view').hidden = true;
    $('#session').hidden = true;
    $('#signin-view').hidden = false;
    $('#token-input').value = '';
    if (reason) showError(byTestId('signin-error'), reason);
    $('#token-input').focus();
  }

  function onAuthFailure(e) {
    if (e instanceof ApiError && e.code === 'invalid_api_key') {
      signOut(e);
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- polling

  function startPolling() {
    stopPolling();
    poll();
    state.timers.push(setInterval(poll, POLL_MS));
    state.timers.push(setInterval(updateCountdowns, 500));
  }

  function stopPolling() {
    state.timers.forEach(clearInterval);
    state.timers = [];
  }

  async function poll() {
    if (state.polling || !state.token || document.hidden) return;
    state.polling = true;
    const gen = state.generation;
    let ok = true;
    try {
      ok = (await refreshDevices(gen)) && ok;
      if (state.selectedId) {
        ok = (await refreshSelected(gen)) && ok;
        ok = (await refreshMessages(gen)) && ok;
      }
      ok = (await window.waDeliveries.refresh(gen)) && ok;
    } finally {
      state.polling = false;
    }
    if (gen !== state.generation) return;
    if (ok) clearBox(byTestId('poll-error'));
    $('#live').classList.toggle('stale', !ok);
    $('#live').textContent = ok ? 'live' : 'offline';
  }

  /** Runs one background refresh; a failure shows in the refresh banner (invalid token: sign out). */
  async function guarded(gen, fn) {
    try {
      await fn();
      return true;
    } catch (e) {
      if (gen !== state.generation) return true;
      if (!onAuthFailure(e)) showError(byTestId('poll-error'), e);
      return false;
    }
  }

  // ---------------------------------------------------------------- devices

  function refreshDevices(gen) {
    return guarded(gen, async () => {
      const { data } = await api('GET', `/devices?limit=${LIST_LIMIT}`);
      if (gen !== state.generation) return;
      state.devices = data.devices || [];
      renderDeviceList();
      if (!state.selectedId) {
        const first = visibleDevices()[0];
        if (first) selectDevice(first.device_id, first);
      }
    });
  }

  function visibleDevices() {
    const list = state.devices.filter((d) => state.showDestroyed || d.status !== 'destroyed');
    return list.sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
  }

  function renderDeviceList() {
    const list = visibleDevices();
    const key = JSON.stringify([state.selectedId, list.map((d) => [d.device_id, d.device_name, d.status, d.wa_number])]);
    const live = state.devices.filter((d) => d.status !== 'destroyed').length;
    $('#device-count').textContent = `${live} live`;
    if (key === state.listKey) return;
    state.listKey = key;
    $('#no-devices').hidden = list.length > 0;
    $('#device-list').replaceChildren(...list.map((d) => h('li', {},
      h('button', {
        type: 'button',
        class: 'device-item',
        'aria-current': d.device_id === state.selectedId ? 'true' : 'false',
        dataset: { deviceId: d.device_id, status: d.status },
        'data-testid': 'device-item',
        onclick: () => selectDevice(d.device_id, d),
      },
      h('span', { class: 'name' }, d.device_name),
      badge(d.status, 'device-item-status'),
      h('span', { class: 'sub mono' }, d.wa_number ? `+${d.wa_number.replace(/^\+/, '')} · ${shortId(d.device_id)}` : d.device_id)))));
  }

  function selectDevice(id, device) {
    if (state.selectedId !== id) {
      state.selectedId = id;
      state.qrCode = null;
      state.qrExpiresAt = null;
      state.pairExpiresAt = null;
      state.messagesKey = '';
      replyTo(null);
      $('#pair-result').hidden = true;
      $('#messages-body').replaceChildren();
      window.waGroups.reset();
      ['device-error', 'pair-error', 'send-error', 'send-result', 'messages-error'].forEach((t) => clearBox(byTestId(t)));
      $$('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
    }
    if (device) renderDevice(device);
    renderDeviceList();
    const gen = state.generation;
    refreshMessages(gen);
  }

  function refreshSelected(gen) {
    const id = state.selectedId;
    return guarded(gen, async () => {
      const { data } = await api('GET', `/devices/${id}`);
      if (gen === state.generation && id === state.selectedId) renderDevice(data.device);
    });
  }

  function renderDevice(d) {
    state.selected = d;
    $('#no-selection').hidden = true;
    $('#device-detail').hidden = false;
    $('#send-panel').hidden = false;
    $('#messages-panel').hidden = false;
    $('#groups-panel').hidden = false;
    $('#device-title').textContent = d.device_name;
    const st = $('#device-status');
    st.className = `badge s-${d.status}`;
    st.textContent = d.status.replace(/_/g, ' ');
    st.dataset.status = d.status;
    $('#device-id').textContent = d.device_id;
    $('#device-number').textContent = d.wa_number ? `+${d.wa_number.replace(/^\+/, '')}` : '—';
    $('#device-jid').textContent = d.wa_device_jid || '—';
    $('#device-linked').textContent = d.linked_at ? fmtTime(d.linked_at) : '—';
    $('#device-created').textContent = fmtTime(d.created_at);
    $('#send-from').textContent = `from ${d.device_name}`;

    const le = $('#device-last-error');
    if (d.last_error) {
      le.replaceChildren(
        h('strong', {}, 'Last error: '),
        h('code', {}, d.last_error.code), ' ', d.last_error.message,
        h('span', { class: 'muted' }, ` (${fmtTime(d.last_error.at)})`));
      le.hidden = false;
    } else {
      le.hidden = true;
    }

    applyButtons();
    const s = d.status;
    const linking = ['initializing', 'qr_generated', 'expired', 'logged_out'].includes(s) || (s === 'disconnected' && !d.linked_at);
    $('#link-panel').hidden = !linking;
    renderQr(d);
  }

  /** Enables what the selected device's status allows (and nothing while a call is in flight). */
  function applyButtons() {
    const d = state.selected;
    const s = d ? d.status : 'destroyed';
    const can = {
      disconnect: ['connected', 'connecting', 'qr_generated', 'initializing'].includes(s),
      reconnect: s === 'disconnected' && !!(d && d.linked_at),
      'new-qr': ['expired', 'disconnected', 'logged_out'].includes(s) || (s === 'qr_generated' && !(d && d.qr)),
      destroy: s !== 'destroyed',
    };
    $$('[data-action]').forEach((b) => {
      b.disabled = b.hasAttribute('aria-busy') || !can[b.dataset.action];
    });
    const send = byTestId('send-submit');
    send.disabled = send.hasAttribute('aria-busy') || s === 'destroyed';
  }

  function renderQr(d) {
    const img = $('#qr-img');
    const missing = $('#qr-missing');
    if (d.qr && d.qr.image) {
      if (state.qrCode !== d.qr.code) {
        // A new QR (WhatsApp rotates them): swap the image.
        img.src = d.qr.image;
        img.dataset.code = d.qr.code;
        state.qrCode = d.qr.code;
      }
      state.qrExpiresAt = d.qr.expires_at;
      img.hidden = false;
      missing.hidden = true;
    } else {
      state.qrCode = null;
      state.qrExpiresAt = null;
      img.hidden = true;
      img.removeAttribute('src');
      missing.hidden = false;
      missing.textContent = d.status === 'initializing'
        ? 'Waiting for the first QR…'
        : 'No valid QR. Use “New QR” to get one, or link with a phone number.';
    }
    updateCountdowns();
  }

  function updateCountdowns() {
    const cd = $('#qr-countdown');
    const meter = $('#qr-meter');
    if (state.qrExpiresAt) {
      const left = secondsLeft(state.qrExpiresAt);
      cd.textContent = left > 0 ? `Expires in ${fmtSeconds(left)}` : 'Expired: waiting for a new QR…';
      cd.classList.toggle('low', left <= 10);
      meter.style.width = `${Math.min(100, (left / 60) * 100)}%`;
    } else {
      cd.textContent = '';
      meter.style.width = '0';
    }
    if (state.pairExpiresAt) {
      const left = secondsLeft(state.pairExpiresAt);
      $('#pair-expiry').textContent = left > 0 ? `valid for ${fmtSeconds(left)}` : 'expired';
    }
  }

  async function createDevice(ev) {
    ev.preventDefault();
    const input = $('#device-name');
    const box = byTestId('devices-error');
    const name = input.value.trim();
    await withBusy(byTestId('create-device'), async () => {
      byTestId('create-device').textContent = 'Creating…';
      try {
        const { data } = await api('POST', '/devices', { device_name: name });
        clearBox(box);
        input.value = '';
        state.devices = [data.device, ...state.devices.filter((d) => d.device_id !== data.device.device_id)];
        selectDevice(data.device.device_id, data.device);
      } catch (e) {
        if (!onAuthFailure(e)) showError(box, e);
      }
    });
  }

  async function deviceAction(ev) {
    const button = ev.currentTarget;
    const action = button.dataset.action;
    const d = state.selected;
    if (!d) return;
    const box = byTestId('device-error');
    const id = d.device_id;
    const calls = {
      disconnect: ['POST', `/devices/${id}/disconnect`],
      reconnect: ['POST', `/devices/${id}/reconnect`],
      'new-qr': ['POST', `/devices/${id}/qr`],
      destroy: ['DELETE', `/devices/${id}`],
    };
    if (action === 'destroy' && !window.confirm(
      `Destroy device “${d.device_name}”?\n\nIt is unlinked from WhatsApp and its keys and media are deleted. This cannot be undone.`)) {
      return;
    }
    await withBusy(button, async () => {
      try {
        const [method, path] = calls[action];
        const res = await api(method, path);
        clearBox(box);
        if (res.data && res.data.device && id === state.selectedId) renderDevice(res.data.device);
        else await refreshSelected(state.generation);
        await refreshDevices(state.generation);
      } catch (e) {
        if (!onAuthFailure(e)) showError(box, e);
      }
    });
  }

  async function requestPairCode(ev) {
    ev.preventDefault();
    const d = state.selected;
    if (!d) return;
    const box = byTestId('pair-error');
    const phone = $('#pair-phone').value.trim();
    const button = byTestId('pair-submit');
    await withBusy(button, async () => {
      button.textContent = 'Waiting for the code…';
      try {
        const { data } = await api('POST', `/devices/${d.device_id}/pair-code`, { phone_number: phone });
        clearBox(box);
        $('#pair-phone').removeAttribute('aria-invalid');
        $('.pair-code').textContent = data.pair_code;
        state.pairExpiresAt = data.expires_at;
        $('#pair-result').hidden = false;
        updateCountdowns();
      } catch (e) {
        if (onAuthFailure(e)) return;
        if (e.details && e.details.field === 'phone_number') $('#pair-phone').setAttribute('aria-invalid', 'true');
        $('#pair-result').hidden = true;
        showError(box, e);
      }
    });
  }

  // ---------------------------------------------------------------- sending

  function onTypeChange() {
    const type = $('#send-type').value;
    const isMedia = MEDIA_TYPES.includes(type);
    $$('fieldset.for-type').forEach((fs) => {
      const types = fs.dataset.types.split(' ');
      fs.hidden = !types.includes(type);
    });
    $$('#send-form [data-types]:not(fieldset)').forEach((el) => {
      el.hidden = !el.dataset.types.split(' ').includes(type);
    });
    if (isMedia) {
      const dl = $('#mime-types');
      dl.replaceChildren(...MIME_TYPES[type].map((m) => h('option', { value: m })));
      const mime = $('#send-mime');
      mime.placeholder = MIME_TYPES[type][0];
      if (mime.value && !MIME_TYPES[type].includes(mime.value)) mime.value = '';
      $('#send-file').accept = MIME_TYPES[type].join(',');
    }
    if (type === 'contact' && !$('#send-vcard').value) $('#send-vcard').value = VCARD_TEMPLATE;
  }

  function onSourceChange() {
    const source = $('input[name="source"]:checked').value;
    $$('#send-form [data-source]').forEach((el) => { el.hidden = el.dataset.source !== source; });
  }

  function onFileChange() {
    const file = $('#send-file').files[0];
    if (!file) return;
    if (file.type) $('#send-mime').value = file.type;
    if (!$('#send-file-name').value || $('#send-file-name').dataset.auto === '1') {
      $('#send-file-name').value = file.name;
      $('#send-file-name').dataset.auto = '1';
    }
  }

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => {
        const url = String(reader.result);
        resolve(url.slice(url.indexOf(',') + 1));
      };
      reader.onerror = () => reject(reader.error || new Error('the file could not be read'));
      reader.readAsDataURL(file);
    });
  }

  function clientError(field, message) {
    return new ApiError(0, 'validation_error', message, null, { field, checked: 'in the browser; nothing was sent' });
  }

  /** The request body of the form, as the API expects it. */
  async function buildMessage() {
    const v = (id) => $(id).value.trim();
    const type = $('#send-type').value;
    const body = { to: v('#send-to'), type };
    if (state.replyTo) body.reply_to = { message_id: state.replyTo };
    if (type === 'text') {
      body.text = $('#send-text').value;
    } else if (MEDIA_TYPES.includes(type)) {
      body.mime_type = v('#send-mime');
      const source = $('input[name="source"]:checked').value;
      if (source === 'file') {
        const file = $('#send-file').files[0];
        if (!file) throw clientError('data_base64', 'Choose a file to send, or send by URL.');
        if (!body.mime_type && file.type) body.mime_type = file.type;
        body.data_base64 = await readBase64(file);
      } else {
        body.url = v('#send-url');
      }
      if (['image', 'video', 'document'].includes(type) && v('#send-caption')) body.caption = v('#send-caption');
      if (type === 'document' && v('#send-file-name')) body.file_name = v('#send-file-name');
      if (type === 'audio') body.ptt = $('#send-ptt').checked;
    } else if (type === 'location') {
      const lat = Number(v('#send-lat'));
      const lon = Number(v('#send-lon'));
      if (v('#send-lat') === '' || Number.isNaN(lat)) throw clientError('latitude', 'Latitude must be a number (-90 to 90).');
      if (v('#send-lon') === '' || Number.isNaN(lon)) throw clientError('longitude', 'Longitude must be a number (-180 to 180).');
      body.latitude = lat;
      body.longitude = lon;
      if (v('#send-loc-name')) body.name = v('#send-loc-name');
      if (v('#send-loc-address')) body.address = v('#send-loc-address');
    } else if (type === 'contact') {
      body.contact_name = v('#send-contact-name');
      body.vcard = $('#send-vcard').value.trim();
    }
    return body;
  }

  async function sendMessage(ev) {
    ev.preventDefault();
    const d = state.selected;
    const result = byTestId('send-result');
    const box = byTestId('send-error');
    clearBox(result);
    clearBox(box);
    $$('#send-form [aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
    if (!d) {
      showError(box, clientError('device_id', 'Select a device first.'));
      return;
    }
    const button = byTestId('send-submit');
    await withBusy(button, async () => {
      button.textContent = 'Sending…';
      try {
        const body = await buildMessage();
        const headers = $('#send-async').checked ? { Prefer: 'respond-async' } : {};
        const res = await api('POST', `/devices/${d.device_id}/messages`, body, headers);
        const m = res.data.message;
        showOk(result,
          h('strong', {}, m.status === 'queued' ? 'Accepted. ' : 'Sent. '),
          'Message ', h('code', { 'data-testid': 'sent-message-id' }, m.message_id), ' is ',
          badge(m.status, 'sent-message-status'),
          h('span', { class: 'muted' }, ` (HTTP ${res.status}, request_id `), h('code', {}, res.requestId || '—'),
          h('span', { class: 'muted' }, ')'));
        replyTo(null);
        state.messagesKey = '';
        refreshMessages(state.generation);
      } catch (e) {
        if (onAuthFailure(e)) return;
        const field = e.details && e.details.field;
        if (field) {
          const input = $(`#send-form [name="${CSS.escape(field)}"]`);
          if (input) input.setAttribute('aria-invalid', 'true');
        }
        showError(box, e);
      }
    });
  }

  // ---------------------------------------------------------------- messages

  function refreshMessages(gen) {
    const id = state.selectedId;
    if (!id) return Promise.resolve(true);
    return guarded(gen, async () => {
      const { data } = await api('GET', `/devices/${id}/messages?limit=${MESSAGES_LIMIT}`);
      if (gen === state.generation && id === state.selectedId) renderMessages(data.messages || []);
    });
  }

  function messageContent(m) {
    const parts = [];
    if (m.reply_to) parts.push(h('div', { class: 'small muted', title: m.reply_to.message_id }, `↩ reply to ${m.reply_to.message_id}`));
    if (m.text) parts.push(h('span', { 'data-testid': 'message-text' }, m.text));
    if (m.mime_type || m.media_path) {
      parts.push(h('div', { class: 'small' }, m.mime_type || 'media'));
      if (m.direction === 'inbound' && m.media_path) {
        parts.push(h('button', {
          type: 'button', class: 'btn small', onclick: () => downloadMedia(m.media_path),
        }, 'Download'));
      }
    }
    if (!parts.length) parts.push(h('span', { class: 'muted' }, m.type));
    if (m.error) parts.push(h('div', { class: 'msg-error' }, `${m.error.code}: ${m.error.message}`));
    return parts;
  }

  /** Quotes message `id` in the next send (`null`: no quote), to its chat. */
  function replyTo(id, chat) {
    state.replyTo = id;
    $('#send-reply').hidden = !id;
    byTestId('send-reply-id').textContent = id || '';
    if (id && chat) {
      $('#send-to').value = chat;
      $('#send-text').focus();
    }
  }

  /** Runs a row action (a reaction, a read receipt): errors in the messages box. */
  async function rowAction(button, fn) {
    const box = byTestId('messages-error');
    clearBox(box);
    await withBusy(button, async () => {
      try {
        await fn();
        state.messagesKey = '';
        await refreshMessages(state.generation);
      } catch (e) {
        if (!onAuthFailure(e)) showError(box, e);
      }
    });
  }

  function messageActions(m) {
    const d = state.selected;
    if (!d || m.type === 'reaction' || m.status === 'revoked') return null;
    const sent = ['sent', 'delivered', 'read', 'played'].includes(m.status);
    const inbound = m.direction === 'inbound';
    if (!inbound && !sent) return null;
    const base = `/devices/${d.device_id}/messages`;
    const buttons = [
      h('button', { type: 'button', class: 'btn small', 'data-testid': 'reply', onclick: () => replyTo(m.message_id, m.chat) }, 'Reply'),
      h('button', {
        type: 'button', class: 'btn small', 'data-testid': 'react', 'aria-label': 'React with a thumbs up',
        onclick: (ev) => rowAction(ev.currentTarget, () => api('POST', base, { to: m.chat, type: 'reaction', message_id: m.message_id, emoji: '👍' })),
      }, '👍'),
    ];
    if (inbound && m.status === 'received') {
      buttons.push(h('button', {
        type: 'button', class: 'btn small', 'data-testid': 'mark-read',
        onclick: (ev) => rowAction(ev.currentTarget, () => api('POST', `${base}/${encodeURIComponent(m.message_id)}/read`)),
      }, 'Mark read'));
    }
    return h('div', { class: 'row compact' }, ...buttons);
  }

  function renderMessages(messages) {
    const key = JSON.stringify(messages.map((m) => [m.message_id, m.status, m.attempts, m.error && m.error.code]));
    if (key === state.messagesKey) return;
    state.messagesKey = key;
    $('#no-messages').hidden = messages.length > 0;
    $('#messages-body').replaceChildren(...messages.map((m) => {
      const inbound = m.direction === 'inbound';
      const peer = inbound ? (m.from_phone ? `+${m.from_phone}` : m.from) : m.to;
      return h('tr', { 'data-testid': 'message-row', dataset: { messageId: m.message_id, status: m.status, direction: m.direction || '' } },
        timeCell(m.created_at),
        h('td', { class: `dir ${inbound ? 'in' : 'out'}` }, inbound ? '↓ in' : '↑ out'),
        h('td', { class: 'mono small', title: m.chat || '' }, peer || '—'),
        h('td', {}, m.type),
        h('td', { class: 'content' }, messageContent(m)),
        h('td', { title: m.message_id }, badge(m.status, 'message-status'),
          m.attempts > 1 ? h('div', { class: 'small' }, `${m.attempts} attempts`) : null),
        h('td', {}, messageActions(m)));
    }));
  }

  async function downloadMedia(path) {
    const box = byTestId('messages-error');
    try {
      const res = await fetch(`/media?path=${encodeURIComponent(path)}`, {
        headers: { Authorization: `Bearer ${state.token}` }, cache: 'no-store',
      });
      if (!res.ok) {
        let body = null;
        try { body = await res.json(); } catch (_) { body = null; }
        const err = body && body.error;
        throw new ApiError(res.status, err ? err.code : `http_${res.status}`, err ? err.message : res.statusText,
          (body && body.request_id) || res.headers.get('x-request-id'), err && err.details);
      }
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: path.split('/').pop() });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      if (!onAuthFailure(e)) showError(box, e);
    }
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $('#signin-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = $('#token-input').value.trim();
      const box = byTestId('signin-error');
      if (!token) {
        showError(box, clientError('token', 'Paste an App token.'));
        return;
      }
      await withBusy(byTestId('sign-in'), () => signIn(token, box));
    });
    $('#sign-out').addEventListener('click', () => signOut(null));
    $('#create-form').addEventListener('submit', createDevice);
    $$('[data-action]').forEach((b) => b.addEventListener('click', deviceAction));
    $('#pair-form').addEventListener('submit', requestPairCode);
    $('#send-form').addEventListener('submit', sendMessage);
    $('#send-reply-clear').addEventListener('click', () => replyTo(null));
    $('#send-type').addEventListener('change', onTypeChange);
    $$('input[name="source"]').forEach((r) => r.addEventListener('change', onSourceChange));
    $('#send-file').addEventListener('change', onFileChange);
    $$('#send-form input, #send-form textarea, #pair-phone').forEach((el) => el.addEventListener('input', () => el.removeAttribute('aria-invalid')));
    $('#send-file-name').addEventListener('input', (ev) => { ev.currentTarget.dataset.auto = '0'; });
    $('#show-destroyed').addEventListener('change', (ev) => {
      state.showDestroyed = ev.currentTarget.checked;
      state.listKey = '';
      renderDeviceList();
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
    onTypeChange();
    onSourceChange();

    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      signIn(saved, byTestId('signin-error'));
    } else {
      $('#token-input').focus();
    }
  }

  // What the groups panel (groups.js) and the deliveries panel (deliveries.js) use.
  window.waDashboard = {
    h, api, state, byTestId, showError, showOk, clearBox, withBusy, onAuthFailure, guarded,
    timeCell, badge, fmtTime, shortId,
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
