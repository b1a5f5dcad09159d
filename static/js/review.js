// The review queue by keyboard: one card is current (outlined). Enter accepts the label its
// answers agree on, a class's key changes the label to that class, the arrows move. A settled
// card (the server's answer replaces it) passes the focus to the next open one.
(function () {
  "use strict";
  let current = 0;

  function cards() { return Array.from(document.querySelectorAll(".review-grid .review:not(.settled)")); }

  function focus(index) {
    const open = cards();
    document.querySelectorAll(".review.current").forEach(function (c) { c.classList.remove("current"); });
    if (!open.length) return;
    current = Math.max(0, Math.min(index, open.length - 1));
    open[current].classList.add("current");
    open[current].scrollIntoView({block: "nearest"});
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    const card = cards()[current];
    if (!card) return;
    let button = null;
    if (event.key === "Enter") button = card.querySelector("button.accept");
    else if (event.key === "ArrowRight" || event.key === "ArrowDown") { focus(current + 1); event.preventDefault(); return; }
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") { focus(current - 1); event.preventDefault(); return; }
    else if (event.key.length === 1) {
      button = card.querySelector('button.change[data-hotkey="' + CSS.escape(event.key.toLowerCase()) + '"]');
    }
    if (button) { button.click(); event.preventDefault(); }
  });

  // After a card is settled the open cards shift: the same index is the next one.
  document.addEventListener("htmx:afterSettle", function () { focus(current); });
  document.addEventListener("DOMContentLoaded", function () { focus(0); });
})();
