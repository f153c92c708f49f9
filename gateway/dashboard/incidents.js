// The dashboard's incidents panel: the tenant's incidents, newest first, each
// with its ranked root causes (confidence and explanation). dashboard.js owns
// the session and the WebSocket: it subscribes to the `incidents` topic and
// hands this script each message ("pulse:incident"), a fetcher for the
// backfill of incidents opened before the page connected ("pulse:live"), and
// a reset when the tenant changes ("pulse:reset"). An incident's newer
// version (a late cause re-ranked, its closing) replaces the older one.
(() => {
  "use strict";

  const SHOWN = 8;
  const CAUSES_SHOWN = 5;
  const KEPT = 200;
  const { formatTime } = window.PulseChart;
  const $ = (id) => document.getElementById(id);

  /** incident_id -> the incident as the topic and /api/v1/rca give it. */
  const incidents = new Map();
  let renderQueued = false;

  function keep(incident) {
    const before = incidents.get(incident.incident_id);
    if (before && (before.revision || 0) > (incident.revision || 0)) return;
    incidents.set(incident.incident_id, incident);
    if (incidents.size > KEPT) {
      const oldest = [...incidents.values()].sort((a, b) => a.opened_at - b.opened_at)[0];
      incidents.delete(oldest.incident_id);
    }
    scheduleRender();
  }

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function resourceName(r) {
    return `${r.kind}/${r.namespace ? r.namespace + "/" : ""}${r.name}`;
  }

  function render() {
    const newest = [...incidents.values()].sort((a, b) => b.opened_at - a.opened_at).slice(0, SHOWN);
    $("incident-list").replaceChildren(...newest.map((incident) => {
      const item = document.createElement("li");
      item.className = `incident ${incident.status}`;
      item.dataset.id = incident.incident_id;
      const head = document.createElement("div");
      head.className = "incident-head";
      const closed = incident.closed_at ? ` – ${formatTime(incident.closed_at)}` : " · open";
      head.textContent = `${formatTime(incident.opened_at)}${closed} · ${resourceName(incident.symptom)}`
        + ` · ${incident.symptom_reason}`;
      const causes = document.createElement("ol");
      causes.className = "causes";
      const ranked = (incident.causes || []).slice(0, CAUSES_SHOWN);
      causes.replaceChildren(...ranked.map((cause) => {
        const line = document.createElement("li");
        line.className = "cause";
        const confidence = Math.round((cause.confidence || 0) * 100);
        line.textContent = `${confidence} % · ${resourceName(cause.resource)} · ${cause.reason}`
          + (cause.explanation ? ` — ${cause.explanation}` : "");
        return line;
      }));
      if (ranked.length === 0) {
        const none = document.createElement("li");
        none.className = "cause none";
        none.textContent = "no candidate cause yet";
        causes.append(none);
      }
      item.append(head, causes);
      return item;
    }));
    $("incidents").dataset.count = String(incidents.size);
    $("no-incidents").hidden = incidents.size > 0;
  }

  /** Incidents opened before the page connected, with their causes. */
  async function backfill(fetchApi) {
    try {
      const page = await fetchApi(`/incidents?page_size=${SHOWN}`);
      for (const summary of page.incidents) {
        const rca = await fetchApi(`/rca?incident_id=${encodeURIComponent(summary.incident_id)}`);
        keep({ ...summary, causes: rca.causes });
      }
    } catch (_) {
      // No incidents operator in this pipeline (503), or a refused request:
      // the panel fills from the topic alone.
    }
  }

  window.addEventListener("pulse:incident", (event) => keep(event.detail));
  window.addEventListener("pulse:live", (event) => backfill(event.detail.fetch));
  window.addEventListener("pulse:reset", () => {
    incidents.clear();
    scheduleRender();
  });
})();
