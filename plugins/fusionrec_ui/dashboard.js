// The fusionrec dashboard: draws the JSON of api/dashboard (published metrics only) with uPlot.
// Every name (base model, method, segment, modality) comes from that JSON; none is written here.
"use strict";

(function () {
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                   "#7f7f7f", "#bcbd22", "#393b79", "#637939"];
  const METRIC_LABELS = {ndcg: "NDCG@K", recall: "Recall@K", hit_rate: "Hit rate@K", coverage: "Coverage@K"};
  const TABLE_DATES = 8;
  const COUNT_INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7];
  const DAY_INCREMENTS = [1, 2, 7, 14, 30, 91, 182, 365].map((days) => days * 86400);  // ticks on whole days  // the value tables show the latest dates; the charts show all of them
  const charts = {};
  window.fusionrec = {charts: charts, data: null, ready: false};

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    if (Number.isInteger(value) && digits === undefined) return value.toLocaleString("en-US");
    return value.toFixed(digits === undefined ? 4 : digits);
  }

  function toSeconds(isoDate) {
    return Date.parse(isoDate + "T00:00:00Z") / 1000;
  }

  function width(target) {
    return Math.max(360, Math.min(1100, (target.clientWidth || document.body.clientWidth) - 8));
  }

  // One line chart: x = published dates, one series per name.
  function lineChart(key, target, dates, seriesByName, options) {
    const names = Object.keys(seriesByName);
    const digits = options.digits;
    const xs = dates.map(toSeconds);
    const data = [xs, ...names.map((name) => seriesByName[name].map((v) => (v === null ? null : v)))];
    const series = [{label: "date", value: (u, v) => (v === null ? "–" : new Date(v * 1000).toISOString().slice(0, 10))}];
    names.forEach((name, i) => {
      const emphasised = options.emphasise ? options.emphasise.includes(name) : true;
      series.push({
        label: name,
        stroke: PALETTE[i % PALETTE.length],
        width: emphasised ? 3 : 1.5,
        dash: emphasised ? undefined : [6, 4],
        spanGaps: true,
        points: {show: true, size: emphasised ? 7 : 5},
        value: (u, v) => fmt(v, digits),
      });
    });
    const opts = {
      width: width(target),
      height: 300,
      series: series,
      scales: {
        x: {time: true, range: (u, min, max) => (min === max ? [min - 86400, max + 86400] : [min, max])},
        y: {range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1]},
      },
      padding: [12, 56, 0, 0],
      axes: [
        {incrs: DAY_INCREMENTS, values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(0, 10))},
        {label: options.yLabel, size: 60, incrs: options.tickDigits === 0 ? COUNT_INCREMENTS : undefined,
         values: (u, ticks) => ticks.map((t) => fmt(t, options.tickDigits))},
      ],
      legend: {live: true},
    };
    if (charts[key]) charts[key].destroy();
    target.replaceChildren();
    const plot = new uPlot(opts, data, target);
    if (xs.length) plot.setCursor({left: plot.valToPos(xs[xs.length - 1], "x"), top: 10});
    charts[key] = plot;
    return plot;
  }

  // A table: one row per name, one column per date (the latest TABLE_DATES dates).
  function valueTable(dates, seriesByName, digits, caption) {
    const first = Math.max(0, dates.length - TABLE_DATES);
    const table = el("table", {"data-caption": caption});
    table.appendChild(el("caption", {}, caption));
    const head = el("tr");
    head.appendChild(el("th", {class: "text"}, "name"));
    dates.slice(first).forEach((d) => head.appendChild(el("th", {}, d)));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    Object.entries(seriesByName).forEach(([name, values]) => {
      const row = el("tr", {"data-name": name});
      row.appendChild(el("td", {class: "text"}, name));
      values.slice(first).forEach((v, i) => row.appendChild(el("td", {"data-date": dates[first + i]}, fmt(v, digits))));
      body.appendChild(row);
    });
    return table;
  }

  function drawQuality(data) {
    const select = document.getElementById("metric");
    const target = document.getElementById("quality-chart");
    const metric = select.value;
    const series = data.metrics[metric] || {};
    const ordered = {};
    data.methods.concat(data.base_models).forEach((name) => { if (series[name]) ordered[name] = series[name]; });
    lineChart("quality", target, data.dates, ordered, {emphasise: data.methods, digits: 4, tickDigits: 3,
                                                        yLabel: METRIC_LABELS[metric] || metric});
    const old = document.getElementById("quality-table");
    const table = valueTable(data.dates, ordered, 4, (METRIC_LABELS[metric] || metric) + " by date");
    table.id = "quality-table";
    if (old) old.replaceWith(table); else target.after(table);
  }

  function drawDecisions(data) {
    const body = document.querySelector("#decisions-table tbody");
    body.replaceChildren();
    data.decisions.slice().reverse().forEach((d) => {
      const row = el("tr", {"data-date": d.date});
      const state = d.passed ? "passed" : (d.kind === "floor" ? "failed" : "skipped");
      row.appendChild(el("td", {}, d.date));
      row.appendChild(el("td", {class: "text chosen"}, d.chosen_method));
      row.appendChild(el("td", {class: "text " + state}, state));
      row.appendChild(el("td", {class: "ndcg"}, fmt(d.ndcg)));
      row.appendChild(el("td", {}, fmt(d.floor)));
      row.appendChild(el("td", {}, d.previous_date ? d.previous_date + " (" + fmt(d.previous_ndcg) + ")" : "none"));
      row.appendChild(el("td", {class: "sentence"}, d.decision || ""));
      body.appendChild(row);
    });
  }

  function drawShares(data) {
    const target = document.getElementById("share-chart");
    lineChart("shares", target, data.dates, data.contribution_share, {digits: 3, tickDigits: 2, yLabel: "share"});
    const table = valueTable(data.dates, data.contribution_share, 3, "Share of the published scores");
    table.id = "share-table";
    target.after(table);
  }

  function drawSegments(data) {
    const select = document.getElementById("segment-date");
    const holder = document.getElementById("segment-tables");
    holder.replaceChildren();
    const segments = data.segments[select.value] || {};
    const metrics = ["ndcg", "recall", "hit_rate", "coverage", "n_users"];
    Object.entries(segments).forEach(([segment, byName]) => {
      const table = el("table", {"data-segment": segment});
      table.appendChild(el("caption", {}, segment.replaceAll("_", " ")));
      const head = el("tr");
      head.appendChild(el("th", {class: "text"}, "name"));
      metrics.forEach((m) => head.appendChild(el("th", {}, m === "n_users" ? "users" : (METRIC_LABELS[m] || m))));
      table.appendChild(el("thead")).appendChild(head);
      const body = table.appendChild(el("tbody"));
      const names = data.methods.concat(data.base_models).filter((n) => byName[n]);
      names.forEach((name) => {
        const row = el("tr", {"data-name": name});
        row.appendChild(el("td", {class: "text"}, name));
        metrics.forEach((m) => row.appendChild(el("td", {"data-metric": m}, fmt(byName[name][m],
                                                                                  m === "n_users" ? undefined : 4))));
        body.appendChild(row);
      });
      holder.appendChild(table);
    });
    if (!Object.keys(segments).length) holder.appendChild(el("p", {}, "No segment metrics for this date."));
  }

  function drawQuarantine(data) {
    const target = document.getElementById("quarantine-chart");
    lineChart("quarantine", target, data.dates, data.quarantine, {tickDigits: 0, yLabel: "rows"});
    const table = valueTable(data.dates, data.quarantine, undefined, "Rows quarantined");
    table.id = "quarantine-table";
    document.getElementById("quarantine-table").replaceWith(table);
  }

  function render(data) {
    const summary = document.getElementById("summary");
    if (!data.dates.length) {
      summary.textContent = "Nothing is published yet: run the DAG multimodal_fusion for a date, then reload.";
      return;
    }
    const last = data.decisions[data.decisions.length - 1];
    summary.textContent = data.dates.length + " published date" + (data.dates.length > 1 ? "s" : "") + " (" +
      data.dates[0] + " to " + data.dates[data.dates.length - 1] + "); latest: " + last.chosen_method +
      " published with NDCG@" + last.k + " " + fmt(last.ndcg) + "; " + data.base_models.length + " base models, " +
      data.methods.length + " fusion methods." +
      (data.unreadable.length ? " Unreadable metrics files: " + data.unreadable.join(", ") + "." : "");
    document.getElementById("dashboard").hidden = false;

    const metricSelect = document.getElementById("metric");
    Object.keys(data.metrics).forEach((m) => metricSelect.appendChild(el("option", {value: m}, METRIC_LABELS[m] || m)));
    metricSelect.addEventListener("change", () => drawQuality(data));
    const dateSelect = document.getElementById("segment-date");
    data.dates.slice().reverse().forEach((d) => dateSelect.appendChild(el("option", {value: d}, d)));
    dateSelect.addEventListener("change", () => drawSegments(data));

    drawQuality(data);
    drawDecisions(data);
    drawShares(data);
    drawSegments(data);
    drawQuarantine(data);
    window.addEventListener("resize", () => Object.entries(charts).forEach(([key, plot]) => {
      const target = document.getElementById(key + "-chart");
      plot.setSize({width: width(target), height: 300});
    }));
  }

  async function main() {
    const summary = document.getElementById("summary");
    try {
      const response = await fetch("api/dashboard", {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (response.status === 401 || response.status === 403) {
        summary.textContent = "Log in to Airflow to see the dashboard (" + response.status + ").";
        summary.className = "summary error";
        return;
      }
      if (!response.ok) throw new Error("api/dashboard answered " + response.status);
      const data = await response.json();
      window.fusionrec.data = data;
      render(data);
      window.fusionrec.ready = true;
    } catch (err) {
      summary.textContent = "Could not load the published metrics: " + err.message;
      summary.className = "summary error";
      throw err;
    }
  }

  main();
})();
