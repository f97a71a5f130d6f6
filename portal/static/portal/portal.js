// The portal works without JavaScript; this only adds comfort: selects that switch at
// once (the tenant, the language) and the collapsing menu on small screens.
document.documentElement.classList.replace("no-js", "js");
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
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
