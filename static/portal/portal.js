// Secrets Portal: behaviour that must not live inline (the CSP forbids inline script).
// Re-masks revealed values after a delay and on demand; htmx history is off in <meta>.
(function () {
  "use strict";
  var MASK = "\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022";

  // The dots are decoration: screen readers hear "value hidden" instead of "bullet" x 8.
  function remask(el) {
    var cell = el.closest(".revealed-cell") || el;
    var hadFocus = cell.contains(document.activeElement);
    var masked = document.createElement("span");
    masked.className = "mask";
    masked.tabIndex = -1;
    var dots = document.createElement("span");
    dots.setAttribute("aria-hidden", "true");
    dots.textContent = MASK;
    masked.append(dots, " value hidden again; reload the page to reveal it");
    cell.replaceChildren(masked);
    if (hadFocus) { masked.focus(); }
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
  document.addEventListener("htmx:afterSettle", function (evt) {
    arm(evt.target);
    // A collapsed service of a large grid was expanded: its link is gone, so keyboard users
    // continue from the service's first row header.
    if (evt.target.matches && evt.target.matches("tbody.service-rows")) {
      var header = evt.target.querySelector("th.service");
      if (header) { header.setAttribute("tabindex", "-1"); header.focus(); }
      return;
    }
    // Keyboard users keep their place: the Reveal button they pressed is gone, the value is here.
    var shown = evt.target.querySelector && evt.target.querySelector(".revealed-cell [data-remask-after], .revealed-cell [role=alert]");
    if (!shown) { return; }
    if (!shown.hasAttribute("tabindex")) { shown.setAttribute("tabindex", "-1"); }
    shown.focus();
  });
  // Leaving the page (or bfcache) must not keep a revealed value around.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-remask-after]").forEach(remask);
  });
})();
