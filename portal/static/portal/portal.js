// The portal works without JavaScript; this only adds comfort: selects that switch at
// once (the tenant, the language), the collapsing menu on small screens, confirmations
// and selecting a secret shown once.
document.documentElement.classList.replace("no-js", "js");
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  // A destructive action (revoke a key, rotate a secret) asks first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // A key or secret shown once is selected whole, ready to copy.
  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
  var toggle = document.querySelector(".nav-toggle");
  var nav = document.getElementById("portal-nav");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
});
