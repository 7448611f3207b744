// The Gateway dashboard: reads the admin API (/admin/listeners, /admin/workers, /admin/connections,
// /admin/stats) every two seconds and closes connections with DELETE /admin/connections/{id}. Every value
// from the server goes into the page as text (textContent), never as markup: remote addresses and FTP
// details come from clients.
"use strict";

(() => {
  const KEY_STORAGE = "gateway.adminKey";
  const REFRESH_MS = 2000;
  const PROTOCOL_COLORS = { echo: "#2457c5", rpc: "#c2410c", ftp: "#15803d" };
  const FALLBACK_COLORS = ["#7c3aed", "#0e7490", "#a16207", "#be185d"];

  const query = { sort: "connectedAt", descending: false, offset: 0, limit: 50, protocol: "", model: "", remote: "" };
  const $ = (id) => document.getElementById(id);
  let charts = null;
  let chartProtocols = "";
  let timer = 0;
  let generation = 0;
  let total = 0;
  let waitingForKey = null;

  class KeyRequired extends Error {}

  // --- the admin API ---------------------------------------------------------------------------------------

  async function api(path, init = {}) {
    const headers = new Headers(init.headers);
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) {
      headers.set("X-Api-Key", key);
    }

    const response = await fetch(path, { ...init, headers, cache: "no-store" });
    if (response.status === 401) {
      throw new KeyRequired();
    }

    if (!response.ok) {
      let detail = response.statusText;
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || detail;
      } catch {
        // not a problem document
      }

      throw new Error(`${response.status} ${detail}`);
    }

    return response.json();
  }

  // Asks for the key once (a second time only if the server refused it) and keeps it for this tab.
  function askForKey(refused) {
    if (!waitingForKey) {
      waitingForKey = new Promise((resolve) => {
        const dialog = $("key-dialog");
        $("key-error").hidden = !refused;
        $("key-input").value = "";
        $("key-form").onsubmit = (event) => {
          event.preventDefault();
          sessionStorage.setItem(KEY_STORAGE, $("key-input").value);
          dialog.close();
          waitingForKey = null;
          $("forget-key").hidden = false;
          resolve();
        };
        dialog.showModal();
      });
    }

    return waitingForKey;
  }

  // --- formatting ------------------------------------------------------------------------------------------

  const integer = new Intl.NumberFormat();
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  function bytes(value) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let unit = 0;
    while (Math.abs(value) >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }

    // Whole bytes as they are; fractions (a rate's axis ticks) keep a decimal, so 1.5 and 2 B/s stay apart.
    return `${unit === 0 && Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
  }

  function duration(seconds) {
    if (seconds < 60) {
      return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    }

    const s = Math.floor(seconds);
    if (s < 3600) {
      return `${Math.floor(s / 60)}m ${s % 60}s`;
    }

    if (s < 86400) {
      return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    }

    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) {
      td.className = className;
    }

    return td;
  }

  function fill(tbody, items, render, emptyText, columns) {
    const rows = items.map((item) => {
      const tr = document.createElement("tr");
      render(tr, item);
      return tr;
    });
    if (rows.length === 0 && emptyText) {
      const tr = document.createElement("tr");
      const td = cell(tr, emptyText, "empty");
      td.colSpan = columns;
      rows.push(tr);
    }

    tbody.replaceChildren(...rows);
  }

  function setOptions(select, values) {
    const wanted = ["", ...values];
    const present = [...select.options].map((o) => o.value);
    if (wanted.join("\n") === present.join("\n")) {
      return;
    }

    const chosen = select.value;
    select.replaceChildren(...wanted.map((value) => new Option(value || "any", value)));
    select.value = wanted.includes(chosen) ? chosen : "";
  }

  // --- listeners and workers -------------------------------------------------------------------------------

  function renderListeners(listeners) {
    fill($("listeners").tBodies[0], listeners, (tr, l) => {
      cell(tr, l.protocol);
      cell(tr, l.address);
      cell(tr, l.model);
      cell(tr, l.tls ? "yes" : "no");
      cell(tr, integer.format(l.active), "number");
      cell(tr, integer.format(l.accepted), "number");
      cell(tr, integer.format(l.rejected), "number");
      cell(tr, bytes(l.bytesIn), "number");
      cell(tr, bytes(l.bytesOut), "number");
    }, "No protocol listeners are enabled.", 9);
    const unique = (values) => [...new Set(values)].sort();
    setOptions($("filter-protocol"), unique(listeners.map((l) => l.protocol)));
    setOptions($("filter-model"), unique(listeners.map((l) => l.model)));
  }

  function renderWorkers(workers) {
    $("workers-section").hidden = workers.length === 0;
    fill($("workers").tBodies[0], workers, (tr, w) => {
      cell(tr, String(w.index), "number");
      cell(tr, String(w.pid), "number");
      cell(tr, w.mode);
      cell(tr, w.state);
      cell(tr, new Date(w.startedAt).toLocaleTimeString());
      cell(tr, integer.format(w.restarts), "number");
      cell(tr, integer.format(w.connections), "number");
      cell(tr, `${w.cpuSeconds.toFixed(1)} s`, "number");
      cell(tr, bytes(w.rssBytes), "number");
    });
  }

  // --- connections -----------------------------------------------------------------------------------------

  function connectionsPath() {
    const params = new URLSearchParams({
      sort: (query.descending ? "-" : "") + query.sort,
      offset: String(query.offset),
      limit: String(query.limit),
    });
    for (const name of ["protocol", "model", "remote"]) {
      if (query[name]) {
        params.set(name, query[name]);
      }
    }

    return `/admin/connections?${params}`;
  }

  function renderConnections(page) {
    total = page.total;
    $("connections-total").textContent = `(${integer.format(page.total)})`;
    fill($("connections").tBodies[0], page.items, (tr, c) => {
      tr.dataset.id = c.id;
      cell(tr, c.id, "id");
      cell(tr, c.protocol);
      cell(tr, c.worker == null ? c.model : `${c.model} (worker ${c.worker})`);
      cell(tr, c.remote, "remote");
      cell(tr, duration(c.ageSeconds), "number");
      cell(tr, duration(c.idleSeconds), "number");
      cell(tr, bytes(c.bytesIn), "number");
      cell(tr, bytes(c.bytesOut), "number");
      cell(tr, integer.format(c.messages), "number");
      cell(tr, c.state, "state");
      const details = Object.entries(c.details || {}).filter(([, v]) => v != null && v !== "");
      cell(tr, details.map(([k, v]) => `${k}: ${v}`).join(", "), "details");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "danger close";
      button.textContent = "Close";
      button.disabled = c.state !== "open";
      button.setAttribute("aria-label", `Close connection ${c.id} from ${c.remote}`);
      button.addEventListener("click", () => askToClose(c));
      tr.insertCell().append(button);
    }, query.remote || query.protocol || query.model ? "No connection matches." : "No open connections.", 12);

    const first = page.items.length === 0 ? 0 : page.offset + 1;
    $("page-info").textContent = `${integer.format(first)}–${integer.format(page.offset + page.items.length)} of ${integer.format(page.total)}`;
    $("page-previous").disabled = page.offset === 0;
    $("page-next").disabled = page.offset + page.items.length >= page.total;
    const unanswered = page.unansweredWorkers || [];
    $("unanswered").hidden = unanswered.length === 0;
    $("unanswered").textContent = unanswered.length === 0 ? "" :
      `Worker(s) ${unanswered.join(", ")} did not answer in time: their connections are missing from this list.`;
    for (const th of $("connections").tHead.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === query.sort) {
        th.setAttribute("aria-sort", query.descending ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }

  function askToClose(connection) {
    const dialog = $("close-dialog");
    $("close-id").textContent = connection.id;
    $("close-remote").textContent = `${connection.remote} (${connection.protocol})`;
    $("close-reason").value = "";
    $("close-error").hidden = true;
    $("close-form").onsubmit = async (event) => {
      event.preventDefault();
      const reason = $("close-reason").value.trim();
      if (!reason) {
        return;
      }

      try {
        await api(`/admin/connections/${encodeURIComponent(connection.id)}?reason=${encodeURIComponent(reason)}`, { method: "DELETE" });
        dialog.close();
        await refresh();
      } catch (error) {
        if (error instanceof KeyRequired) {
          dialog.close();
          await askForKey(Boolean(sessionStorage.getItem(KEY_STORAGE)));
          return;
        }

        $("close-error").textContent = `Not closed: ${error.message}`;
        $("close-error").hidden = false;
      }
    };
    dialog.showModal();
  }

  // --- charts ----------------------------------------------------------------------------------------------

  function chartWidth(element) {
    return Math.max(300, element.clientWidth);
  }

  function makeChart(element, series, axes, scales) {
    return new uPlot({
      width: chartWidth(element),
      height: 200,
      series: [{ value: (_, t) => t == null ? "–" : clock.format(new Date(t * 1000)) }, ...series.map((s) => ({ points: { show: false }, ...s }))],
      axes: [{ values: (_, ticks) => ticks.map((t) => clock.format(new Date(t * 1000))), space: 70 }, ...axes],
      scales: { x: { time: true }, ...scales },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, [[]], element);
  }

  function makeCharts(protocols) {
    for (const id of ["chart-connections", "chart-bytes", "chart-rpc"]) {
      $(id).replaceChildren();
    }

    const colors = (index, protocol) => PROTOCOL_COLORS[protocol] || FALLBACK_COLORS[index % FALLBACK_COLORS.length];
    const bytesAxis = { values: (_, ticks) => ticks.map((v) => `${bytes(v)}/s`), size: 80 };
    return {
      connections: makeChart($("chart-connections"),
        protocols.map((p, i) => ({ label: p, stroke: colors(i, p), width: 2 })),
        [{ values: (_, ticks) => ticks.map((v) => integer.format(v)), size: 60 }], { y: { range: (_, min, max) => [0, Math.max(max, 1)] } }),
      bytes: makeChart($("chart-bytes"),
        [{ label: "received", stroke: "#2457c5", width: 2, value: (_, v) => v == null ? "–" : `${bytes(v)}/s` },
          { label: "sent", stroke: "#c2410c", width: 2, value: (_, v) => v == null ? "–" : `${bytes(v)}/s` }],
        [bytesAxis], { y: { range: (_, min, max) => [0, Math.max(max, 1)] } }),
      rpc: makeChart($("chart-rpc"),
        [{ label: "p50", stroke: "#15803d", width: 2, scale: "ms", value: (_, v) => v == null ? "–" : `${v.toFixed(3)} ms` },
          { label: "p99", stroke: "#b42318", width: 2, scale: "ms", value: (_, v) => v == null ? "–" : `${v.toFixed(3)} ms` },
          { label: "requests/s", stroke: "#7c8799", width: 1, dash: [4, 4], scale: "rps", value: (_, v) => v == null ? "–" : integer.format(Math.round(v)) }],
        [{ scale: "ms", values: (_, ticks) => ticks.map((v) => `${v} ms`), size: 70 },
          { scale: "rps", side: 1, grid: { show: false }, size: 60 }],
        { ms: { range: (_, min, max) => [0, Math.max(max, 1)] }, rps: { range: (_, min, max) => [0, Math.max(max, 1)] } }),
    };
  }

  function renderStats(stats, protocols) {
    const key = protocols.join(",");
    if (!charts || key !== chartProtocols) {
      charts = makeCharts(protocols);
      chartProtocols = key;
    }

    const samples = stats.samples;
    const times = samples.map((s) => Date.parse(s.at) / 1000);
    charts.connections.setData([times, ...protocols.map((p) => samples.map((s) => s.connections[p] ?? 0))]);
    charts.bytes.setData([times, samples.map((s) => s.bytesInPerSecond), samples.map((s) => s.bytesOutPerSecond)]);
    charts.rpc.setData([times, samples.map((s) => s.rpcLatencyP50Ms), samples.map((s) => s.rpcLatencyP99Ms), samples.map((s) => s.rpcRequestsPerSecond)]);
  }

  window.addEventListener("resize", () => {
    if (charts) {
      for (const [name, chart] of Object.entries(charts)) {
        chart.setSize({ width: chartWidth($(`chart-${name}`)), height: 200 });
      }
    }
  });

  // --- refresh ---------------------------------------------------------------------------------------------

  async function refresh() {
    clearTimeout(timer);
    // A refresh started by the timer may answer after one started by a click (a new filter or page): only the
    // latest one started is shown, so an older answer never overwrites what the user just asked for.
    const mine = ++generation;
    try {
      const [listeners, workers, page, stats] = await Promise.all([
        api("/admin/listeners"), api("/admin/workers"), api(connectionsPath()), api("/admin/stats?seconds=300"),
      ]);
      if (mine !== generation) {
        return;
      }
      if (page.total > 0 && page.items.length === 0 && query.offset > 0) {
        query.offset = Math.max(0, Math.floor((page.total - 1) / query.limit) * query.limit); // the page emptied
        return refresh();
      }

      renderListeners(listeners);
      renderWorkers(workers);
      renderConnections(page);
      renderStats(stats, [...new Set(listeners.map((l) => l.protocol))]);
      $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
      $("status").classList.remove("error");
    } catch (error) {
      if (mine !== generation && !(error instanceof KeyRequired)) {
        return; // a newer refresh will say how things stand
      }

      if (error instanceof KeyRequired) {
        const refused = Boolean(sessionStorage.getItem(KEY_STORAGE));
        sessionStorage.removeItem(KEY_STORAGE);
        $("status").textContent = "Waiting for the API key…";
        await askForKey(refused);
        return refresh();
      }

      $("status").textContent = `The admin API did not answer: ${error.message}`;
      $("status").classList.add("error");
    } finally {
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    if ($("auto-refresh").checked && !waitingForKey) {
      timer = setTimeout(() => {
        if (document.hidden) {
          schedule();
        } else {
          refresh();
        }
      }, REFRESH_MS);
    }
  }

  // --- controls --------------------------------------------------------------------------------------------

  function requery(change) {
    Object.assign(query, change, { offset: change.offset ?? 0 });
    refresh();
  }

  for (const th of $("connections").tHead.querySelectorAll("th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => {
      const sort = th.dataset.sort;
      requery({ sort, descending: sort === query.sort ? !query.descending : false });
    });
  }

  $("filter-protocol").addEventListener("change", (e) => requery({ protocol: e.target.value }));
  $("filter-model").addEventListener("change", (e) => requery({ model: e.target.value }));
  $("page-size").addEventListener("change", (e) => requery({ limit: Number(e.target.value) }));
  let typing = 0;
  $("filter-remote").addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => requery({ remote: e.target.value.trim() }), 300);
  });
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("page-previous").addEventListener("click", () => requery({ offset: Math.max(0, query.offset - query.limit) }));
  $("page-next").addEventListener("click", () => {
    if (query.offset + query.limit < total) {
      requery({ offset: query.offset + query.limit });
    }
  });
  $("close-cancel").addEventListener("click", () => $("close-dialog").close());
  $("auto-refresh").addEventListener("change", () => (($("auto-refresh").checked) ? refresh() : clearTimeout(timer)));
  $("forget-key").hidden = !sessionStorage.getItem(KEY_STORAGE);
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("forget-key").hidden = true;
    refresh();
  });

  refresh();
})();
