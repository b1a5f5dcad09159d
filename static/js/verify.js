// Verification pages: a tile's key (shown on it) or a click marks it as not the page's class,
// Enter accepts the page (the unmarked tiles are labeled with its class), Backspace reopens
// the previous page. The server renders every page; this file maps keys to the checkboxes
// and times the page. Keys pressed while the next page is on its way are dropped, not
// applied to a page the annotator has not seen.
(function () {
  "use strict";

  function page() {
    const el = document.getElementById("card");
    return el && el.classList.contains("verify-page") ? el : null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const el = page();
    if (!el) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
        (target.tagName === "INPUT" && target.type !== "checkbox"))) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (event.repeat || el.classList.contains("busy")) {
      if (key === "Enter" || key === "Backspace" || key.length === 1) event.preventDefault();
      return;
    }
    if (key === "Enter") {
      event.preventDefault();
      el.querySelector("#accept-page").click();
    } else if (key === "Backspace") {
      const back = el.querySelector("#back-button");
      if (back) { event.preventDefault(); back.click(); }
    } else if (key.length === 1) {
      const box = el.querySelector('.tile[data-key="' + CSS.escape(key) + '"] input');
      if (box) { event.preventDefault(); box.checked = !box.checked; }
    }
  });

  // Time taken: from the page being shown to its answer being sent.
  document.addEventListener("htmx:configRequest", function (event) {
    const el = page();
    if (!el || !event.detail.elt || !event.detail.elt.closest("#page-form")) return;
    const shown = parseFloat(el.dataset.shownAt || "0");
    if (shown) event.detail.parameters.duration_ms = Math.round(performance.now() - shown);
  });
})();
