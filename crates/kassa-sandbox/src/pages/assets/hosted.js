// Kassa's hosted pages (test processor): a page submits once. The first submit disables every
// button of the page (Pay, bank debit, Complete / Fail authentication), so a second click or
// Enter cannot post again while the first post is on its way. The server answers a repeated
// post without paying twice as well; this spares the buyer a second request.
"use strict";
(function () {
  var submitted = false;
  document.addEventListener("submit", function (event) {
    if (submitted) {
      event.preventDefault();
      return;
    }
    submitted = true;
    // The buttons carry no name or value, so disabling them leaves the form's data intact.
    document.querySelectorAll("button").forEach(function (button) {
      button.disabled = true;
    });
    if (event.submitter) {
      event.submitter.setAttribute("aria-busy", "true");
    }
  });
  // A page that comes back with a problem (a decline, a mistyped card) opens with focus on
  // the message, where a screen reader reads it (`autofocus` is not honoured everywhere on an
  // element that is not a control).
  document.addEventListener("DOMContentLoaded", function () {
    var problem = document.getElementById("payment-error");
    if (problem && document.activeElement !== problem) {
      problem.focus();
    }
  });
  // A page restored from the back/forward cache gets its buttons back.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      submitted = false;
      document.querySelectorAll("button").forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      });
    }
  });
})();
