// The usage page's tooltips: pointing at (or tapping) a chart shows the bucket under the
// pointer, its units and the running total. Without JavaScript the table below each
// chart has the same figures.
document.addEventListener("DOMContentLoaded", function () {
  var tip = document.querySelector(".chart-tip");
  if (!tip) { return; }
  var marked = null;
  function hide() {
    tip.hidden = true;
    if (marked) { marked.classList.remove("active"); marked = null; }
  }
  function show(rect, event) {
    if (marked !== rect) {
      if (marked) { marked.classList.remove("active"); }
      marked = rect;
      rect.classList.add("active");
      tip.textContent = rect.getAttribute("data-tip");
    }
    tip.hidden = false;
    var width = tip.offsetWidth;
    var left = Math.min(event.clientX + 12, window.innerWidth - width - 8);
    tip.style.left = Math.max(8, left) + "px";
    tip.style.top = (event.clientY - tip.offsetHeight - 12) + "px";
  }
  document.querySelectorAll("svg[data-chart]").forEach(function (svg) {
    var rects = svg.querySelectorAll(".hits rect");
    function point(event) {
      // The column under the pointer, found by x: thin hour columns are hard to hit.
      var box = svg.getBoundingClientRect();
      var x = (event.clientX - box.left) * svg.viewBox.baseVal.width / box.width;
      var low = 0, high = rects.length - 1;
      if (high < 0) { return; }
      while (low < high) {
        var middle = (low + high + 1) >> 1;
        if (parseFloat(rects[middle].getAttribute("x")) <= x) { low = middle; } else { high = middle - 1; }
      }
      var rect = rects[low];
      var end = parseFloat(rect.getAttribute("x")) + parseFloat(rect.getAttribute("width"));
      if (x < parseFloat(rects[0].getAttribute("x")) || x > end + 1) { hide(); return; }
      show(rect, event);
    }
    svg.addEventListener("pointermove", point);
    svg.addEventListener("pointerdown", point);  // a tap on a phone
    svg.addEventListener("pointerleave", hide);
  });
  window.addEventListener("scroll", hide, { passive: true });
});
