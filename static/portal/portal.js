// Secrets Portal: behaviour that must not live inline (the CSP forbids inline script).
// Re-masks revealed values after a delay and on demand; htmx history is off in <meta>.
(function () {
  "use strict";
  var MASK = "\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022";

  function remask(el) {
    var cell = el.closest(".revealed-cell") || el;
    var masked = document.createElement("span");
    masked.className = "mask";
    masked.setAttribute("aria-label", "hidden value");
    masked.textContent = MASK + " (hidden again; reload to reveal)";
    cell.replaceChildren(masked);
  }

  function arm(root) {
    var nodes = (root || document).querySelectorAll("[data-remask-after]");
    nodes.forEach(function (el) {
      if (el.dataset.armed) { return; }
      el.dataset.armed = "1";
      var seconds = parseInt(el.getAttribute("data-remask-after"), 10) || 20;
      window.setTimeout(function () { if (el.isConnected) { remask(el); } }, seconds * 1000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { arm(document); });
  document.addEventListener("htmx:afterSettle", function (evt) { arm(evt.target); });
  // Leaving the page (or bfcache) must not keep a revealed value around.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-remask-after]").forEach(remask);
  });
})();
