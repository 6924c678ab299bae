// Keeps the parts of a console page marked data-live="URL" current: every data-every
// milliseconds the fragment at URL replaces the part's contents. No framework, no build.
"use strict";
(function () {
  function refresh(part) {
    var url = part.getAttribute("data-live");
    var every = parseInt(part.getAttribute("data-every") || "3000", 10);
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || response.status === 401) {
            window.location.assign("/sign-in");
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            part.innerHTML = html;
            part.setAttribute("data-refreshed", String(Date.now()));
          }
        })
        .catch(function () { /* the next tick tries again */ })
        .finally(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(refresh);
  });
})();
