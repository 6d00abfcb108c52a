// archspec report: sorting the layer table, the diagram's tooltips, charts that point at rows.
// Inlined into the page; it reads only the page itself and fetches nothing.
"use strict";

(function () {
  // Sorting: a click on a header sorts by that column; numbers first from the largest, text from A;
  // a second click reverses. Ties keep execution order, so the sort is stable and repeatable.
  // A numeric cell carries its number in data-v; one without (a symbolic size, `64*H*W`) sorts last.
  function cellValue(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell.getAttribute("data-v");
    if (numeric) {
      return v === null ? -Infinity : parseFloat(v);
    }
    return (v === null ? cell.textContent : v).toLowerCase();
  }

  function sortTable(table, th) {
    var col = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "number";
    var was = th.getAttribute("aria-sort");
    var dir = was ? (was === "ascending" ? "descending" : "ascending") : (numeric ? "descending" : "ascending");
    var sign = dir === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, col, numeric), y = cellValue(b, col, numeric);
      if (x < y) return -sign;
      if (x > y) return sign;
      return parseInt(a.getAttribute("data-i"), 10) - parseInt(b.getAttribute("data-i"), 10);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, th); }
      });
    });
  });

  // The diagram's tooltips: Graphviz puts them on <a xlink:title>; show them at once, in a box of
  // our own, and drop the <title> elements that would make the browser show node ids instead.
  var tip = document.getElementById("tip");
  var XLINK = "http://www.w3.org/1999/xlink";
  document.querySelectorAll(".diagram svg a").forEach(function (a) {
    var text = a.getAttributeNS(XLINK, "title");
    if (text !== null) {
      a.setAttribute("data-tip", text);
      a.removeAttributeNS(XLINK, "title");
    }
  });
  document.querySelectorAll(".diagram svg g > title").forEach(function (t) { t.parentNode.removeChild(t); });
  document.querySelectorAll(".diagram svg a[data-tip]").forEach(function (a) {
    a.addEventListener("mousemove", function (e) {
      tip.textContent = a.getAttribute("data-tip");
      tip.style.display = "block";
      var x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      var y = Math.min(e.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
      tip.style.left = Math.max(0, x) + "px";
      tip.style.top = Math.max(0, y) + "px";
    });
    a.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  });

  var fit = document.getElementById("fit");
  if (fit) {
    fit.addEventListener("click", function () {
      var box = document.querySelector(".diagram");
      var fitted = box.classList.toggle("fit");
      fit.textContent = fitted ? "actual size" : "fit to width";
    });
  }

  // A bar or point of a chart shows its layer's row in the table.
  document.querySelectorAll("svg.chart [data-row]").forEach(function (mark) {
    mark.addEventListener("click", function () {
      var row = document.getElementById("row-" + mark.getAttribute("data-row"));
      if (!row) return;
      document.querySelectorAll("tr.hl").forEach(function (r) { r.classList.remove("hl"); });
      row.classList.add("hl");
      row.scrollIntoView({ block: "center" });
    });
  });
})();
