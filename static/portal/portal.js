// Secrets Portal: behaviour that must not live inline (the CSP forbids inline script).
// Re-masks revealed values after a delay and on demand; htmx history is off in <meta>.
(function () {
  "use strict";
  var MASK = "\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022";

  // What a cell showed before its value was revealed (mask, type, fingerprint, Reveal button:
  // never a value), so re-masking brings it back without a reload.
  var before = new WeakMap();

  // The dots are decoration: screen readers hear "value hidden" instead of "bullet" x 8.
  function remask(el) {
    var shown = el.closest(".revealed-cell") || el;
    var cell = shown.parentElement;
    var hadFocus = shown.contains(document.activeElement);
    if (cell && before.has(cell)) {
      cell.innerHTML = before.get(cell);
      before.delete(cell);
      // kept while its request ran: the restored button is idle
      cell.querySelectorAll(".htmx-request").forEach(function (b) { b.classList.remove("htmx-request"); });
      if (window.htmx) { window.htmx.process(cell); }
      var again = cell.querySelector("button.reveal");
      if (hadFocus && again) { again.focus(); }
      return;
    }
    var masked = document.createElement("span");
    masked.className = "mask";
    masked.tabIndex = -1;
    var dots = document.createElement("span");
    dots.setAttribute("aria-hidden", "true");
    dots.textContent = MASK;
    masked.append(dots, " value hidden again; reload the page to reveal it");
    shown.replaceChildren(masked);
    if (hadFocus) { masked.focus(); }
  }

  // A visible countdown, the Copy and Hide buttons (hidden until this script arms them: without
  // JavaScript they could do nothing). Copy reads the value from the element on screen at the
  // moment of the click; nothing keeps a copy of it.
  function arm(root) {
    var nodes = (root || document).querySelectorAll("[data-remask-after]");
    nodes.forEach(function (el) {
      if (el.dataset.armed) { return; }
      el.dataset.armed = "1";
      var seconds = parseInt(el.getAttribute("data-remask-after"), 10) || 20;
      var box = el.closest(".revealed-cell") || el.parentElement;
      var counter = box.querySelector("[data-countdown]");
      var left = seconds;
      var tick = window.setInterval(function () {
        left -= 1;
        if (!el.isConnected) { window.clearInterval(tick); return; }
        if (counter) { counter.textContent = String(Math.max(left, 0)); }
      }, 1000);
      window.setTimeout(function () {
        window.clearInterval(tick);
        if (el.isConnected) { remask(el); }
      }, seconds * 1000);
      box.querySelectorAll("[data-no-script]").forEach(function (note) { note.hidden = true; });
      box.querySelectorAll("[data-reveal-action]").forEach(function (button) {
        button.hidden = false;
        button.addEventListener("click", function () {
          if (button.dataset.revealAction === "hide") { window.clearInterval(tick); remask(el); return; }
          if (!navigator.clipboard) { return; }
          navigator.clipboard.writeText(el.textContent).then(function () {
            button.textContent = "Copied";
          }, function () {
            button.textContent = "Copy failed";
          });
        });
      });
    });
  }

  // Keep what the cell showed before an htmx reveal replaces it (the response is the reveal's).
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    var text = evt.detail.xhr && evt.detail.xhr.responseText;
    if (target && text && text.indexOf("revealed-cell") !== -1 && !before.has(target)) {
      before.set(target, target.innerHTML);
    }
  });

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
