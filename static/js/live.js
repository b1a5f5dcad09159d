// Live updates for one project over a websocket (core/consumers.py). The page opts in with
// <div id="live" data-ws-path="/ws/projects/ID/">. A new model version is announced without
// touching the card being labeled; job rows arrive rendered by the server and replace theirs;
// every element with data-live-url is fetched again each time the socket (re)connects.
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

  // A job's row, rendered by the server (core/jobs_table.html, the same template as the
  // page's), replaces the row of that id or goes on top.
  function onJob(event) {
    root.dataset.lastJob = event.id + ":" + event.status;
    const table = document.getElementById("jobs");
    if (!table || !event.html) return;
    const template = document.createElement("template");
    template.innerHTML = event.html.trim();
    const row = template.content.firstElementChild;
    const old = document.getElementById(row.id);
    if (old) old.replaceWith(row);
    else {
      table.tBodies[0].prepend(row);
      const empty = table.querySelector("tr.empty");
      if (empty) empty.remove();
    }
  }

  // Re-render one live fragment (an element with data-live-url) from the server.
  function refresh(element) {
    if (!window.htmx || !element.id) return;
    htmx.ajax("GET", element.dataset.liveUrl, {target: "#" + element.id, swap: "outerHTML"});
  }

  // Whatever happened while no socket was listening (before the first connection, or
  // while it was down) is in the server's fragments: fetch them all again.
  function refreshAll() {
    document.querySelectorAll("[data-live-url]").forEach(refresh);
  }

  // The encoder in use changed (a fallback, or `auto` chose another): re-render its panel.
  function onEncoder() {
    const panel = document.getElementById("encoder-panel");
    if (panel) refresh(panel);
  }

  function connect() {
    const socket = new WebSocket(url);
    socket.onopen = function () {
      delay = 1000;
      refreshAll();
      root.dataset.connected = "1";
    };
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
