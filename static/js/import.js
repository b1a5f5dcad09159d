// Upload progress on the import page, from htmx's XHR progress events.
(function () {
  "use strict";
  const form = document.getElementById("import-form");
  const bar = document.getElementById("upload-progress");
  const statusText = document.getElementById("upload-status");
  if (!form || !bar || !statusText) return;
  form.addEventListener("htmx:xhr:progress", function (e) {
    if (!e.detail.lengthComputable) return;
    bar.hidden = false;
    bar.value = Math.round((e.detail.loaded / e.detail.total) * 100);
    statusText.textContent = bar.value < 100 ? "Uploading… " + bar.value + "%" : "Checking and importing images…";
  });
  form.addEventListener("htmx:afterRequest", function () {
    bar.hidden = true; statusText.textContent = "";
  });
})();
