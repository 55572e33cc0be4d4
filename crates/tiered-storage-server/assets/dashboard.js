// Shows GET /v1/stats as tables and refreshes every 5 s. The token (when the service requires
// one for reads) is kept in this tab's sessionStorage and sent as a bearer token.
"use strict";

const TOKEN_KEY = "tiered-storage-token";

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function fill(tbody, rows) {
  tbody.replaceChildren();
  for (const values of rows) {
    const tr = document.createElement("tr");
    for (const v of values) cell(tr, v);
    tbody.appendChild(tr);
  }
}

function render(stats) {
  const tiers = ["hot", "warm", "cold"].map((name) => {
    const t = stats[name];
    return [name, t.record_count, t.bytes, t.hit_rate.toFixed(1), t.p50_us, t.p95_us, t.p99_us, t.writes];
  });
  fill(document.querySelector("#tiers tbody"), tiers);
  fill(document.querySelector("#figures tbody"), [
    ["total records", stats.total_records],
    ["cold files", stats.cold.file_count],
    ["archival lag (s)", stats.archival.lag_secs],
    ["records archived", stats.archival.records_archived],
    ["compaction files in", stats.compaction.files_in],
    ["maintenance steps", stats.maintenance.steps],
    ["active alerts", stats.alerts.length],
  ]);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/v1/stats", { headers: headers() });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new Error(body && body.error ? body.error.message : "HTTP " + response.status);
    }
    render(await response.json());
    status.textContent = "Updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (e) {
    status.textContent = "Cannot load /v1/stats: " + e.message;
    status.className = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    refresh();
  });
  refresh();
  setInterval(refresh, 5000);
});
