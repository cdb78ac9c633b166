/* The dashboard's webhook deliveries panel: the App's latest deliveries, filterable by
   status, and replaying a failed or skipped one (GET /webhooks/deliveries,
   POST /webhooks/deliveries/{id}/retry). app.js refreshes it with every poll. */
'use strict';

(() => {
  const DELIVERIES_LIMIT = 25;
  const $ = (sel) => document.querySelector(sel);
  const ui = () => window.waDashboard;

  function refreshDeliveries(gen) {
    const { guarded, api, state } = ui();
    return guarded(gen, async () => {
      const q = state.deliveryFilter ? `&status=${encodeURIComponent(state.deliveryFilter)}` : '';
      const { data } = await api('GET', `/webhooks/deliveries?limit=${DELIVERIES_LIMIT}${q}`);
      if (gen === state.generation) renderDeliveries(data.deliveries || []);
    });
  }

  function deviceName(id) {
    const { state, shortId } = ui();
    const d = state.devices.find((x) => x.device_id === id);
    return d ? d.device_name : shortId(id);
  }

  function renderDeliveries(list) {
    const { state, h, timeCell, badge, fmtTime } = ui();
    const key = JSON.stringify([state.deliveryFilter, list.map((d) => [d.delivery_id, d.status, d.attempts, d.updated_at])]);
    if (key === state.deliveriesKey) return;
    state.deliveriesKey = key;
    $('#no-deliveries').hidden = list.length > 0;
    $('#no-deliveries').textContent = state.deliveryFilter ? `No ${state.deliveryFilter} deliveries.` : 'No webhook deliveries.';
    $('#deliveries-body').replaceChildren(...list.map((d) => {
      const last = [];
      if (d.last_status_code) last.push(h('code', {}, `HTTP ${d.last_status_code}`), ' ');
      if (d.last_error) last.push(d.last_error);
      const replayable = d.status === 'failed' || d.status === 'skipped';
      return h('tr', { 'data-testid': 'delivery-row', dataset: { deliveryId: d.delivery_id, status: d.status, event: d.event } },
        timeCell(d.created_at),
        h('td', {},
          h('code', {}, d.event),
          h('details', {}, h('summary', {}, 'body'), h('pre', {}, JSON.stringify(d.body, null, 2)))),
        h('td', { title: d.device_id }, deviceName(d.device_id)),
        h('td', {}, badge(d.status, 'delivery-status')),
        h('td', {}, String(d.attempts)),
        h('td', { class: 'small content' }, last.length ? last : '—'),
        h('td', { class: 'nowrap small' }, d.next_attempt_at ? fmtTime(d.next_attempt_at) : '—'),
        h('td', {}, replayable
          ? h('button', {
            type: 'button', class: 'btn small', 'data-testid': 'replay',
            onclick: (ev) => replayDelivery(ev.currentTarget, d),
          }, 'Replay')
          : null));
    }));
  }

  async function replayDelivery(button, d) {
    const {
      api, state, h, badge, byTestId, withBusy, clearBox, showOk, showError, onAuthFailure,
    } = ui();
    const ok = byTestId('deliveries-result');
    const box = byTestId('deliveries-error');
    await withBusy(button, async () => {
      try {
        const res = await api('POST', `/webhooks/deliveries/${encodeURIComponent(d.delivery_id)}/retry`);
        clearBox(box);
        showOk(ok, 'Delivery ', h('code', {}, d.delivery_id), ` (${d.event}) replayed: now `,
          badge(res.data.delivery.status, 'replayed-status'), '.');
        state.deliveriesKey = '';
        await refreshDeliveries(state.generation);
      } catch (e) {
        clearBox(ok);
        if (!onAuthFailure(e)) showError(box, e);
      }
    });
  }

  function onFilter(ev) {
    const { state, byTestId, clearBox } = ui();
    state.deliveryFilter = ev.currentTarget.value;
    state.deliveriesKey = '';
    clearBox(byTestId('deliveries-result'));
    refreshDeliveries(state.generation);
  }

  window.waDeliveries = { refresh: refreshDeliveries };
  const init = () => $('#delivery-filter').addEventListener('change', onFilter);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
