// Live updates for one project over a websocket (core/consumers.py). The page opts in with
// <div id="live" data-ws-path="/ws/projects/ID/">. A new model version is announced without
// touching the card being labeled; job rows on the project page update in place.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root || !window.WebSocket) return;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const url = scheme + location.host + root.dataset.wsPath;
  let delay = 1000;

  function text(el, value) { if (el) el.textContent = value; }

  function onModel(event) {
    const accuracy = event.estimated_accuracy == null ? ", too few labels to estimate its accuracy" :
      ", estimated accuracy " + Math.round(100 * event.estimated_accuracy) + "%";
    if (event.kind === "cold_start") {
      text(document.getElementById("model-status"),
        "The first images are now one typical image per cluster (TypiClust), until a model is trained.");
      return;
    }
    const label = event.kind === "zero_shot" ? "CLIP zero-shot suggestions" : "model";
    text(document.getElementById("model-status"),
      "Now using " + label + " v" + event.version + " (" + event.labels + " labels" + accuracy +
      "). The next images are ranked by it.");
    root.dataset.modelVersion = String(event.version);
    const badge = document.getElementById("model-version");
    if (badge) badge.textContent = "model v" + event.version;
  }

  function onJob(event) {
    root.dataset.lastJob = event.id + ":" + event.status;
    const table = document.getElementById("jobs");
    if (!table) return;
    let row = document.getElementById("job-" + event.id);
    if (!row) {
      row = document.createElement("tr");
      row.id = "job-" + event.id;
      for (let i = 0; i < 4; i++) row.appendChild(document.createElement("td"));
      table.tBodies[0].prepend(row);
    }
    const cells = row.cells;
    text(cells[0], "#" + event.id + " " + event.kind_label);
    text(cells[1], event.status);
    cells[2].innerHTML = "";
    const bar = document.createElement("progress");
    bar.max = 1; bar.value = event.progress;
    cells[2].appendChild(bar);
    text(cells[3], event.message || "");
    if (event.download_url) {
      const link = document.createElement("a");
      link.href = event.download_url;
      link.textContent = " Download";
      cells[3].appendChild(link);
    }
  }

  // The encoder in use changed (a fallback, or `auto` chose another): re-render its panel.
  function onEncoder() {
    const panel = document.getElementById("encoder-panel");
    if (!panel || !window.htmx) return;
    htmx.ajax("GET", panel.dataset.refreshUrl, {target: "#encoder-panel", swap: "outerHTML"});
  }

  function connect() {
    const socket = new WebSocket(url);
    socket.onopen = function () { delay = 1000; root.dataset.connected = "1"; };
    socket.onmessage = function (message) {
      const event = JSON.parse(message.data);
      if (event.event === "model") onModel(event);
      else if (event.event === "job") onJob(event);
      else if (event.event === "encoder") onEncoder();
      document.body.dispatchEvent(new CustomEvent("project-updated", {detail: event}));
    };
    socket.onclose = function (close) {
      root.dataset.connected = "0";
      if (close.code === 4403) return;  // not a member: do not retry
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
