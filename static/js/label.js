// Keyboard labeling: Enter confirms the highlighted class (only a pre-selected suggestion is
// highlighted; with none, Enter stores nothing and says so), a hotkey answers with that class,
// S skips, Backspace goes back to the previous answer. The server renders every card; this
// file only maps keys to the buttons, times each answer, and keeps the keys typed while the
// next card is on its way: they are applied to that card once it is shown.
(function () {
  "use strict";

  const MAX_PENDING = 4;
  const BOUNCE_MS = 150;  // the same key again this soon is a double press, not a new answer
  const pending = [];
  let lastKey = "", lastKeyAt = 0;

  function card() { return document.getElementById("card"); }
  function busy() { return !card() || card().classList.contains("busy"); }

  function markShown() {
    const el = card();
    if (el) el.dataset.shownAt = String(performance.now());
  }

  function click(selector) {
    const el = card() && card().querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }

  function hint(message) {
    const el = document.getElementById("key-hint");
    if (el) el.textContent = message;
  }

  // Act on the card shown now; true when the key meant something here.
  function apply(key) {
    if (key === "Enter") {
      if (click("button.cls.selected")) return true;
      if (card() && card().querySelector("button.cls")) {
        hint("Nothing is selected: press the key of a class to answer (nothing was stored).");
        return true;
      }
      return false;
    }
    if (key === "Backspace") return click("#back-button");
    if (key === "s") return click("#skip-button");
    if (key.length === 1) return click('button.cls[data-hotkey="' + CSS.escape(key) + '"]');
    return false;
  }

  function isLabelingKey(key) {
    return key === "Enter" || key === "Backspace" || key.length === 1;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    if (!card() || card().classList.contains("verify-page")) return;  // verify.js has those keys
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (!isLabelingKey(key)) return;
    const now = performance.now();
    const bounce = event.repeat || (key === lastKey && now - lastKeyAt < BOUNCE_MS);
    lastKey = key; lastKeyAt = now;
    if (bounce) { event.preventDefault(); return; }
    if (busy()) {
      // The next card is on its way: keep the key for it (typing ahead is not lost).
      if (pending.length < MAX_PENDING) pending.push(key);
      event.preventDefault();
      return;
    }
    if (apply(key)) event.preventDefault();
  });

  function drain() {
    while (pending.length && !busy()) apply(pending.shift());
  }

  // Time taken: from the card being shown to the answer being sent.
  document.addEventListener("htmx:configRequest", function (event) {
    const el = card();
    // htmx 2 passes the form data as a proxy without an `in` trap: test the element instead.
    if (!el || !event.detail.elt || !event.detail.elt.closest("#answer-form")) return;
    const shown = parseFloat(el.dataset.shownAt || "0");
    if (shown) event.detail.parameters.duration_ms = Math.round(performance.now() - shown);
  });
  // While a request is in flight the card is busy: keys wait in `pending` for the next card.
  document.addEventListener("htmx:beforeRequest", function () { if (card()) card().classList.add("busy"); });
  document.addEventListener("htmx:afterSettle", function () { markShown(); drain(); });
  document.addEventListener("htmx:responseError", function () {
    pending.length = 0;  // the card they were meant for did not come
    if (card()) card().classList.remove("busy");
  });
  document.addEventListener("DOMContentLoaded", markShown);
})();
