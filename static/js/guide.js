// The labeling guide beside the card (#guidelines): the ? key or its button shows and hides
// it; the choice is remembered per project in this browser. The key is reserved
// (core/services/classes.py), so it never answers a card.
(function () {
  "use strict";
  const panel = document.getElementById("guidelines");
  const button = document.getElementById("guide-toggle");
  if (!panel || !button) return;
  const key = "annotator-guide-" + panel.dataset.project;

  function show(open) {
    panel.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    try { localStorage.setItem(key, open ? "1" : "0"); } catch (e) { /* private mode */ }
  }

  let stored = null;
  try { stored = localStorage.getItem(key); } catch (e) { /* private mode */ }
  show(stored === null ? panel.dataset.openFirst === "1" : stored === "1");
  button.addEventListener("click", function () { show(panel.hidden); });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "?" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    show(panel.hidden);
    event.preventDefault();
    event.stopImmediatePropagation();  // not a class key (label.js)
  }, true);
})();
