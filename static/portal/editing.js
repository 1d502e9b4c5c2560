// Secrets Portal: the editor's comforts (the CSP forbids inline script; everything here also
// works without JavaScript, where the server checks the same rules).
// * a typed value is checked against the type chosen beside it (number, boolean, null, JSON)
//   before the form is sent; the server checks again and says the same;
// * the "type the secret's name" field shows (and is required) once a removal is chosen;
// * leaving the editor with edits in it asks first (beforeunload).
(function () {
  "use strict";

  var NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;  // JSON's number grammar (RFC 8259)

  function problem(text, type) {
    var t = text.trim();
    if (type === "null") {
      return t === "" || t === "null" ? "" : "A null takes no value: clear the field or choose another type.";
    }
    if (text === "" || type === "string") { return ""; }
    if (type === "boolean") { return /^(true|false)$/i.test(t) ? "" : "A boolean is true or false."; }
    if (type === "number") { return NUMBER.test(t) ? "" : "Not a number (write it like 3, -1.5 or 2e10)."; }
    if (type === "json") {
      try { JSON.parse(t); return ""; } catch (e) { return "Not valid JSON."; }
    }
    return "";
  }

  // A grid cell holds one input and its type; a new-key row one type for all its inputs.
  function scopeOf(el) { return el.closest(".typed-value") || el.closest("tr"); }

  function check(scope) {
    var select = scope && scope.querySelector("select.value-type");
    if (!select) { return; }
    scope.querySelectorAll("input.secret-input").forEach(function (input) {
      input.setCustomValidity(problem(input.value, select.value));
    });
  }

  function onEdit(evt) {
    var el = evt.target;
    if (el.matches && el.matches("#editor input.secret-input, #editor select.value-type")) {
      check(scopeOf(el));
    }
  }
  document.addEventListener("input", onEdit);
  document.addEventListener("change", onEdit);

  function removalChosen(form) {
    return Array.prototype.some.call(form.querySelectorAll("[data-removal]"), function (el) {
      return el.type === "checkbox" ? el.checked : el.value !== "";
    });
  }

  function toggleConfirmation(form) {
    var box = document.getElementById("confirm-removal");
    if (!box) { return; }
    var input = box.querySelector("input");
    var needed = removalChosen(form) || input.value !== "";
    box.hidden = !needed;
    input.required = removalChosen(form);
  }

  // Edits are anything typed or ticked, also when the server filled them back in (review ->
  // "back to the editor"), so the comparison is with the page's blank state, not its defaults.
  function hasEdits(form) {
    return Array.prototype.some.call(form.elements, function (el) {
      if (el.type === "hidden" || el.name === "confirm_name") { return false; }
      if (el.type === "checkbox") { return el.checked; }
      if (el.matches("select[data-removal]")) { return el.value !== ""; }
      if (el.matches(".typed-value select")) {  // a cell's type changed (to null: no text)
        var initial = el.querySelector("option[selected]") || el.options[0];
        return el.value !== initial.value;
      }
      if (el.tagName === "SELECT") { return false; }
      return el.tagName === "INPUT" && el.value !== "";
    });
  }

  var leaving = false;
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("editor");
    if (!form) { return; }
    toggleConfirmation(form);
    form.addEventListener("change", function () { toggleConfirmation(form); });
    form.addEventListener("submit", function () { leaving = true; });
    window.addEventListener("beforeunload", function (evt) {
      if (leaving || !hasEdits(form)) { return; }
      evt.preventDefault();
      evt.returnValue = "";  // Chromium shows its own "Leave site?" text
    });
  });

  // ---- The grid: services fold (a toggle on each service), a filter box narrows the keys.
  function armServices(root) {
    root.querySelectorAll("table.grid tbody.service-rows").forEach(function (body) {
      var header = body.querySelector("tr.service-start th.service");
      if (!header || header.querySelector("button.service-toggle")) { return; }
      var name = header.textContent.trim();
      var toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "service-toggle";
      toggle.setAttribute("aria-expanded", "true");
      toggle.setAttribute("aria-label", "Fold " + name);
      toggle.textContent = "\u25be";
      toggle.addEventListener("click", function () {
        var open = toggle.getAttribute("aria-expanded") === "true";
        toggle.setAttribute("aria-expanded", open ? "false" : "true");
        toggle.setAttribute("aria-label", (open ? "Unfold " : "Fold ") + name);
        toggle.textContent = open ? "\u25b8" : "\u25be";
        body.querySelectorAll("tr").forEach(function (row, i) {
          if (i > 0) { row.classList.toggle("folded-row", open); }
        });
      });
      header.prepend(toggle);
    });
  }

  function filterGrid(input) {
    var q = input.value.trim().toLowerCase();
    var shown = 0;
    var total = 0;
    document.querySelectorAll("table.grid tbody.service-rows").forEach(function (body) {
      var header = body.querySelector("tr.service-start th.service");
      var service = header ? header.textContent.trim().toLowerCase() : "";
      body.querySelectorAll("tr").forEach(function (row) {
        var key = row.querySelector("th.key");
        if (!key) { return; }
        total += 1;
        var hit = !q || service.indexOf(q) !== -1 || key.textContent.toLowerCase().indexOf(q) !== -1;
        // the service's first row stays while any of its keys matches: it names the service
        row.classList.toggle("filtered-out", !hit);
        if (hit) { shown += 1; }
      });
      var first = body.querySelector("tr.service-start");
      if (first && q && body.querySelector("tr:not(.filtered-out)")) { first.classList.remove("filtered-out"); }
    });
    var count = document.getElementById("grid-filter-count");
    if (count) { count.textContent = q ? shown + " of " + total + " keys" : ""; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    armServices(document);
    var input = document.getElementById("grid-filter");
    if (!input) { return; }
    input.closest(".grid-filter").hidden = false;
    input.addEventListener("input", function () { filterGrid(input); });
  });
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.target && evt.target.closest && evt.target.closest("table.grid")) {
      armServices(evt.target.parentElement || document);
      var input = document.getElementById("grid-filter");
      if (input && input.value) { filterGrid(input); }
    }
  });
})();
