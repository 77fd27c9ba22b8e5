(function () {
  var data = JSON.parse(document.getElementById("node-data").textContent);
  var panel = document.getElementById("panel");
  var svg = document.querySelector("svg.graph");
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function show(id) {
    var d = data[id];
    if (!d) return;
    panel.textContent = "";
    panel.appendChild(el("h2", d.node));
    var dl = el("dl");
    [["op", d.op], ["plugin", d.plugin], ["pattern", d.pattern || "none (host)"],
     ["partition", d.partition], ["inputs", d.inputs.join("\n")],
     ["outputs", d.outputs.join("\n")]].forEach(function (row) {
      dl.appendChild(el("dt", row[0]));
      var dd = el("dd", row[1]);
      dd.style.whiteSpace = "pre-line";
      if (row[0] === "plugin") {
        var sw = el("span", undefined, "swatch");
        sw.style.background = d.colour;
        dd.insertBefore(sw, dd.firstChild);
      }
      dl.appendChild(dd);
    });
    panel.appendChild(dl);
    var plugins = Object.keys(d.reasons);
    panel.appendChild(el("h2", plugins.length ? "Why not the other plugins" :
                                                "No other plugin was asked"));
    plugins.forEach(function (plugin) {
      panel.appendChild(el("strong", plugin));
      var ul = el("ul");
      d.reasons[plugin].forEach(function (r) { ul.appendChild(el("li", r)); });
      panel.appendChild(ul);
    });
    document.querySelectorAll("svg.graph .node.selected").forEach(function (n) {
      n.classList.remove("selected");
    });
    var g = document.getElementById(id);
    if (g) g.classList.add("selected");
  }
  svg.addEventListener("click", function (event) {
    var g = event.target.closest("g.node");
    if (g) show(g.id);
  });
  document.querySelectorAll("tr[data-part]").forEach(function (row) {
    row.addEventListener("mouseenter", function () {
      svg.classList.add("dim");
      svg.querySelectorAll("." + row.dataset.part).forEach(function (n) {
        n.classList.add("hi");
      });
    });
    row.addEventListener("mouseleave", function () {
      svg.classList.remove("dim");
      svg.querySelectorAll(".hi").forEach(function (n) { n.classList.remove("hi"); });
    });
  });
})();
