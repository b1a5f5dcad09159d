// Keyboard labeling: Enter confirms the highlighted class, a hotkey answers with that
// class, S skips, Backspace goes back to the previous answer. The server renders every
// card; this file only maps keys to the buttons and times each answer.
(function () {
  "use strict";

  function card() { return document.getElementById("card"); }

  function markShown() {
    const el = card();
    if (el) el.dataset.shownAt = String(performance.now());
  }

  function click(selector) {
    const el = card() && card().querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    if (!card() || card().classList.contains("busy")) return;
    const key = event.key.toLowerCase();
    let handled = false;
    if (event.key === "Enter") {
      handled = click("button.cls.selected") || click("button.cls");
    } else if (event.key === "Backspace") {
      handled = click("#back-button");
    } else if (key === "s") {
      handled = click("#skip-button");
    } else if (key.length === 1) {
      handled = click('button.cls[data-hotkey="' + CSS.escape(key) + '"]');
    }
    if (handled) event.preventDefault();
  });

  // Time taken: from the card being shown to the answer being sent.
  document.addEventListener("htmx:configRequest", function (event) {
    const el = card();
    // htmx 2 passes the form data as a proxy without an `in` trap: test the element instead.
    if (!el || !event.detail.elt || !event.detail.elt.closest("#answer-form")) return;
    const shown = parseFloat(el.dataset.shownAt || "0");
    if (shown) event.detail.parameters.duration_ms = Math.round(performance.now() - shown);
  });
  // Ignore keys while a request is in flight, so a double press cannot answer the next image.
  document.addEventListener("htmx:beforeRequest", function () { if (card()) card().classList.add("busy"); });
  document.addEventListener("htmx:afterSettle", markShown);
  document.addEventListener("htmx:responseError", function () { if (card()) card().classList.remove("busy"); });
  document.addEventListener("DOMContentLoaded", markShown);
})();
