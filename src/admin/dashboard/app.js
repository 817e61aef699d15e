"use strict";
// The compliance dashboard. The token lives in this closure only: never in storage, a
// cookie or the URL. Every value from the server is written as text (textContent), never
// as markup.
(() => {
  let token = null;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function cell(row, text, numeric) {
    row.appendChild(el("td", numeric ? { class: "n" } : {}, text));
  }
  function fill(tbody, rows, build) {
    tbody.replaceChildren();
    for (const r of rows) {
      const tr = el("tr");
      build(tr, r);
      tbody.appendChild(tr);
    }
    if (!rows.length) {
      const tr = el("tr");
      tr.appendChild(el("td", { colspan: 9 }, "nothing in this window"));
      tbody.appendChild(tr);
    }
  }
  const pct = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%");

  function status(text, error) {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  }

  async function get(path) {
    const resp = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    if (!resp.ok) {
      let message = resp.status + " " + resp.statusText;
      try {
        const body = await resp.json();
        message = body.error.code + ": " + body.error.message;
      } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return resp;
  }

  function incidents(inc) {
    const tiles = [
      ["report_deny", inc.report_deny, "report-mode would-be denials"],
      ["fail_closed", inc.fail_closed, "fail-closed refusals"],
      ["audit_failures", inc.audit_failures_since_start, "audit failures (since start)"],
      ["policy_reload_failures", inc.policy_reload_failures_since_start, "policy reload failures (since start)"],
    ];
    const box = $("incidents");
    box.replaceChildren();
    for (const [id, n, label] of tiles) {
      const t = el("div", { class: n > 0 ? "tile alert" : "tile", id: "incident-" + id });
      t.appendChild(el("b", {}, n));
      t.appendChild(el("span", {}, label));
      box.appendChild(t);
    }
  }

  function consentChart(rows) {
    const decided = rows.filter((r) => r.subjects > 0);
    const w = 560, rowH = 22, left = 170, h = Math.max(1, decided.length) * rowH + 10;
    const svg = el("svg:svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img", "aria-label": "consent rate per region and purpose" });
    decided.forEach((r, i) => {
      const y = 5 + i * rowH;
      const bw = Math.round((w - left - 60) * r.consent_rate);
      svg.appendChild(el("svg:text", { x: 0, y: y + 14 }, r.region + " / " + r.purpose));
      svg.appendChild(el("svg:rect", { x: left, y: y + 3, width: w - left - 60, height: 14, fill: "#e7ebf3" }));
      svg.appendChild(el("svg:rect", { x: left, y: y + 3, width: bw, height: 14, fill: "#3558a5" }));
      svg.appendChild(el("svg:text", { x: w - 55, y: y + 14 }, pct(r.consent_rate)));
    });
    if (!decided.length) svg.appendChild(el("svg:text", { x: 0, y: 16 }, "no recorded consent decisions"));
    $("consent-chart").replaceChildren(svg);
  }

  function timeline(tl) {
    const pts = tl.points, w = 560, h = 180, pad = 28;
    const max = Math.max(1, ...pts.map((p) => p.allow + p.deny + p.report_deny));
    const bw = (w - pad) / Math.max(1, pts.length);
    const svg = el("svg:svg", { viewBox: `0 0 ${w} ${h + 20}`, width: "100%", role: "img", "aria-label": "accesses and denials over time" });
    svg.appendChild(el("svg:text", { x: 0, y: 12 }, max));
    svg.appendChild(el("svg:line", { x1: pad, y1: h, x2: w, y2: h, stroke: "#d9dee7" }));
    pts.forEach((p, i) => {
      let y = h;
      for (const [k, color] of [["allow", "#2f7d4f"], ["deny", "#b3261e"], ["report_deny", "#c77700"]]) {
        const bh = (p[k] / max) * (h - 10);
        if (bh > 0) {
          y -= bh;
          const r = el("svg:rect", { x: pad + i * bw, y, width: Math.max(1, bw - 1), height: bh, fill: color });
          r.appendChild(el("svg:title", {}, `${p.t}: ${p[k]} ${k}`));
          svg.appendChild(r);
        }
      }
    });
    if (pts.length) {
      svg.appendChild(el("svg:text", { x: pad, y: h + 16 }, pts[0].t));
      svg.appendChild(el("svg:text", { x: w - 150, y: h + 16 }, pts[pts.length - 1].t));
    }
    const legend = el("svg:text", { x: pad + 40, y: 12 }, "");
    legend.textContent = "allowed (green) · denied (red) · report-mode denials (amber), per " + (tl.step_seconds / 60) + " min";
    svg.appendChild(legend);
    $("timeline").replaceChildren(svg);
  }

  // The Markdown report escapes every character that Markdown or HTML could read as syntax;
  // shown as plain text (textContent, never HTML) the escapes are undone for reading.
  function readable(md) {
    return md
      .replace(/\\([\\`*_{}\[\]()#+\-.!|<>~:'"])/g, "$1")
      .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
  }

  async function showReport(subject) {
    try {
      const resp = await get("/v1/subjects/" + encodeURIComponent(subject) + "/report?format=markdown");
      $("report").textContent = readable(await resp.text());
      $("report").hidden = false;
    } catch (e) {
      status("access report: " + e.message, true);
    }
  }

  function render(s) {
    incidents(s.incidents);
    consentChart(s.consent);
    const decided = s.consent.filter((r) => r.subjects > 0);
    $("consent-note").textContent = (s.consent.length - decided.length) + " purposes with no recorded decision are not listed.";
    fill($("consent-table").tBodies[0], decided, (tr, r) => {
      tr.dataset.cell = r.region + "/" + r.purpose;
      cell(tr, r.region); cell(tr, r.purpose);
      cell(tr, r.granted, true); cell(tr, r.denied, true); cell(tr, r.withdrawn, true); cell(tr, r.expired, true);
      cell(tr, pct(r.consent_rate), true);
    });
    timeline(s.timeline);
    fill($("access-table").tBodies[0], s.accesses, (tr, r) => {
      tr.dataset.cell = r.region + "/" + r.purpose;
      const d = r.by_decision, masked = Object.values(r.values_masked).reduce((a, b) => a + b, 0);
      cell(tr, r.region); cell(tr, r.purpose);
      cell(tr, r.accesses, true); cell(tr, d.allow || 0, true); cell(tr, d.deny || 0, true); cell(tr, d.report_deny || 0, true);
      cell(tr, r.gpc_applied, true); cell(tr, r.fields_withheld, true); cell(tr, masked, true);
    });
    const callers = [];
    for (const [purpose, list] of Object.entries(s.top_callers)) for (const c of list) callers.push([purpose, c]);
    fill($("callers-table").tBodies[0], callers, (tr, [purpose, c]) => {
      cell(tr, purpose); cell(tr, c.caller); cell(tr, c.accesses, true);
    });
    fill($("subjects-table").tBodies[0], s.top_subjects, (tr, r) => {
      cell(tr, r.subject); cell(tr, r.accesses, true);
      const td = el("td"), a = el("a", { href: r.report + "?format=markdown", class: "report-link" }, "access report");
      a.addEventListener("click", (ev) => { ev.preventDefault(); showReport(r.subject); });
      td.appendChild(a);
      tr.appendChild(td);
    });
    $("figures").hidden = false;
    status(`${s.records} audit records from ${s.from} to ${s.to}; consent figures as of ${s.generated_at}.`);
  }

  async function load() {
    const to = new Date(), from = new Date(to.getTime() - Number($("range").value) * 1000);
    const q = "from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
    try {
      status("loading…");
      const resp = await get("/v1/stats?" + q);
      render(await resp.json());
    } catch (e) {
      status(e.message, true);
    }
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    $("forget").hidden = false;
    load();
  });
  $("range").addEventListener("change", () => { if (token) load(); });
  $("forget").addEventListener("click", () => {
    token = null;
    $("figures").hidden = true;
    $("forget").hidden = true;
    status("Token forgotten.");
  });
})();
