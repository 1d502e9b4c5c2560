// Secrets Portal: the editor's comforts (the CSP forbids inline script; everything here also
// works without JavaScript, where the server checks the same rules).
// * a typed value is checked against the type chosen beside it (number, boolean, null, JSON)
//   before the form is sent; the server checks again and says the same.
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
})();
