/* The dashboard's groups panel: the selected device's groups, and a group's members with
   their roles (GET /devices/{id}/groups, GET /devices/{id}/groups/{jid}). */
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);
  const ui = () => window.waDashboard;

  function role(p) {
    if (p.is_super_admin) return 'creator';
    return p.is_admin ? 'admin' : 'member';
  }

  function showMembers(group) {
    const { h } = ui();
    $('#group-subject').textContent = `${group.subject} (${group.participant_count})`;
    $('#group-members-body').replaceChildren(...group.participants.map((p) => h('tr', {
      'data-testid': 'group-member', dataset: { jid: p.jid, role: role(p) },
    },
    h('td', { class: 'mono small' }, p.jid),
    h('td', {}, p.phone_number ? `+${p.phone_number}` : '—'),
    h('td', {}, role(p)))));
    $('#group-detail').hidden = false;
  }

  /** Runs `fn` with `button` busy; errors in the panel's box. */
  async function guarded(button, fn) {
    const { byTestId, clearBox, showError, withBusy, onAuthFailure } = ui();
    const box = byTestId('groups-error');
    clearBox(box);
    await withBusy(button, async () => {
      try {
        await fn();
      } catch (e) {
        if (!onAuthFailure(e)) showError(box, e);
      }
    });
  }

  async function openGroup(button, deviceId, jid) {
    await guarded(button, async () => {
      const { data } = await ui().api('GET', `/devices/${deviceId}/groups/${encodeURIComponent(jid)}`);
      showMembers(data.group);
    });
  }

  async function loadGroups(ev) {
    const deviceId = ui().state.selectedId;
    if (!deviceId) return;
    await guarded(ev.currentTarget, async () => {
      const { h } = ui();
      const { data } = await ui().api('GET', `/devices/${deviceId}/groups`);
      $('#groups-list').replaceChildren(...data.groups.map((g) => h('li', {},
        h('button', {
          type: 'button', class: 'btn small', 'data-testid': 'group', dataset: { jid: g.jid },
          onclick: (e) => openGroup(e.currentTarget, deviceId, g.jid),
        }, `${g.subject} · ${g.participant_count}`))));
      $('#group-detail').hidden = true;
    });
  }

  /** Empties the panel (another device, or signed out: `hide` too). */
  function reset(hide) {
    $('#groups-list').replaceChildren();
    $('#group-members-body').replaceChildren();
    $('#group-detail').hidden = true;
    if (hide) $('#groups-panel').hidden = true;
    const box = document.querySelector('[data-testid="groups-error"]');
    if (box) {
      box.hidden = true;
      box.replaceChildren();
    }
  }

  window.waGroups = { reset };
  const init = () => $('#load-groups').addEventListener('click', loadGroups);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
