// The image on the labeling card: zoom (wheel, + / - keys, double-click), pan (drag), 1:1
// (*) and fit (/), and a link to the full-size file. Its keys are reserved
// (core/services/classes.py VIEWER_KEYS), so they never collide with a class's hotkey.
// Photos are scaled smoothly; pixels are drawn as squares only once each covers two screen
// pixels or more (a 32 px image on the card, or a photo zoomed past 2:1).
(function () {
  "use strict";
  const STEP = 1.25;
  let view = null;  // {box, img, scale, x, y}

  function fitted(img) {
    // The image's own scale inside its box when it fits (object-fit: contain).
    const w = img.naturalWidth || img.clientWidth, h = img.naturalHeight || img.clientHeight;
    return Math.min(img.clientWidth / w, img.clientHeight / h) || 1;
  }

  function maxScale(img) { return Math.max(8, 4 / fitted(img)); }

  function clampPan() {
    const w = view.img.clientWidth, h = view.img.clientHeight;
    view.x = Math.min(0, Math.max(w - w * view.scale, view.x));
    view.y = Math.min(0, Math.max(h - h * view.scale, view.y));
  }

  function render() {
    const img = view.img;
    clampPan();
    img.style.transform = "translate(" + view.x + "px, " + view.y + "px) scale(" + view.scale + ")";
    const shown = fitted(img) * view.scale;  // screen pixels per image pixel
    img.classList.toggle("pixelated", shown >= 2);  // squares once a pixel is 2+ screen pixels
    view.box.classList.toggle("zoomed", view.scale > 1.001);
    view.box.dataset.zoom = view.scale.toFixed(3);
    view.box.dataset.pixelScale = shown.toFixed(3);
    view.box.dataset.pan = Math.round(view.x) + "," + Math.round(view.y);
  }

  function zoomTo(scale, cx, cy) {
    const img = view.img;
    const next = Math.min(maxScale(img), Math.max(1, scale));
    if (cx === undefined) { cx = img.clientWidth / 2; cy = img.clientHeight / 2; }
    view.x = cx - (cx - view.x) * (next / view.scale);
    view.y = cy - (cy - view.y) * (next / view.scale);
    view.scale = next;
    render();
  }

  function fit() { view.scale = 1; view.x = 0; view.y = 0; render(); }
  function actualPixels() { zoomTo(1 / fitted(view.img)); }

  function setup() {
    const box = document.getElementById("viewer");
    const img = box && box.querySelector("img");
    if (!img) { view = null; return; }
    if (view && view.img === img) return;
    view = {box: box, img: img, scale: 1, x: 0, y: 0};
    if (img.complete) render(); else img.addEventListener("load", render, {once: true});

    box.addEventListener("wheel", function (event) {
      event.preventDefault();
      const r = box.getBoundingClientRect();
      const factor = event.deltaY < 0 ? STEP : 1 / STEP;
      zoomTo(view.scale * factor, event.clientX - r.left, event.clientY - r.top);
    }, {passive: false});

    let drag = null;
    box.addEventListener("pointerdown", function (event) {
      if (view.scale <= 1.001 || event.button !== 0) return;
      drag = {id: event.pointerId, x: event.clientX, y: event.clientY};
      box.setPointerCapture(event.pointerId);
      box.classList.add("dragging");
      event.preventDefault();
    });
    box.addEventListener("pointermove", function (event) {
      if (!drag || event.pointerId !== drag.id) return;
      view.x += event.clientX - drag.x; view.y += event.clientY - drag.y;
      drag.x = event.clientX; drag.y = event.clientY;
      render();
    });
    function end() { drag = null; box.classList.remove("dragging"); }
    box.addEventListener("pointerup", end);
    box.addEventListener("pointercancel", end);
    box.addEventListener("dblclick", function (event) {
      const r = box.getBoundingClientRect();
      if (view.scale > 1.001) fit();
      else zoomTo(Math.max(2, 1 / fitted(view.img)), event.clientX - r.left, event.clientY - r.top);
    });
  }

  document.addEventListener("keydown", function (event) {
    if (!view || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    const key = event.key;
    if (key === "+" || key === "=") zoomTo(view.scale * STEP);
    else if (key === "-" || key === "_") zoomTo(view.scale / STEP);
    else if (key === "*") actualPixels();
    else if (key === "/") fit();
    else return;
    event.preventDefault();
    event.stopImmediatePropagation();  // not a class key (label.js)
  }, true);

  document.addEventListener("htmx:afterSettle", setup);
  document.addEventListener("DOMContentLoaded", setup);
  window.addEventListener("resize", function () { if (view) render(); });
})();
