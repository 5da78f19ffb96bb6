// reconciler gallery: filter, search and keyboard navigation. Plain JavaScript, no build step,
// nothing fetched: works from disk (file://) and from a CI artifact. Text is set with
// textContent only, never parsed as HTML.
"use strict";
(function () {
  var form = document.getElementById("filter");
  if (!form) return;
  form.hidden = false;
  var shown = document.getElementById("shown");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".card"));
  var results = document.getElementById("results");
  var MAX_RESULTS = 100;

  function current() {
    var flags = [];
    form.querySelectorAll("input[name=flag]:checked").forEach(function (i) { flags.push(i.value); });
    return { q: form.q.value.trim().toLowerCase(), status: form.status.value, format: form.format.value, flags: flags };
  }

  function matches(f, name, uuid, status, format, flags) {
    var have = " " + flags + " ";
    return (!f.q || name.indexOf(f.q) >= 0 || uuid.indexOf(f.q) >= 0) &&
      (!f.status || status === f.status) && (!f.format || format === f.format) &&
      f.flags.every(function (x) { return have.indexOf(" " + x + " ") >= 0; });
  }

  function active(f) { return Boolean(f.q || f.status || f.format || f.flags.length); }

  function toHash(f) {
    var p = new URLSearchParams();
    if (f.q) p.set("q", f.q);
    if (f.status) p.set("status", f.status);
    if (f.format) p.set("format", f.format);
    f.flags.forEach(function (x) { p.append("flag", x); });
    return p.toString();
  }

  function fromHash() {
    var h = location.hash.slice(1);
    if (!h || h.indexOf("p-") === 0) return;  // an anchor to a card, not a filter
    var p = new URLSearchParams(h);
    form.q.value = p.get("q") || "";
    form.status.value = p.get("status") || "";
    form.format.value = p.get("format") || "";
    var flags = p.getAll("flag");
    form.querySelectorAll("input[name=flag]").forEach(function (i) { i.checked = flags.indexOf(i.value) >= 0; });
  }

  function filterCards(f) {
    var n = 0;
    cards.forEach(function (c) {
      var d = c.dataset;
      var ok = matches(f, d.name, d.uuid, d.status, d.format, d.flags);
      c.hidden = !ok;
      if (ok) n += 1;
    });
    shown.textContent = n + " of " + cards.length + " on this page";
  }

  function searchAll(f) {
    results.textContent = "";
    var rows = window.GALLERY_INDEX || [];
    if (!active(f)) { shown.textContent = rows.length + " products"; return; }
    var n = 0;
    rows.forEach(function (r) {  // [uuid, name, page, status, format, flags]
      if (!matches(f, r[1].toLowerCase(), r[0], r[3], r[4], r[5])) return;
      n += 1;
      if (n > MAX_RESULTS) return;
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "page-" + r[2] + ".html#p-" + r[0];
      a.textContent = r[1];
      li.appendChild(a);
      li.appendChild(document.createTextNode(" · " + r[3].replace("_", " ") + (r[5] ? " · " + r[5] : "") + " · page " + r[2]));
      results.appendChild(li);
    });
    shown.textContent = n + " of " + rows.length + " products match" + (n > MAX_RESULTS ? " (first " + MAX_RESULTS + " listed)" : "");
  }

  var applied = null;
  function apply() {
    var f = current();
    var h = toHash(f);
    // "change" follows "input" when the search box loses focus: rebuilding the results then
    // would remove the very link being clicked.
    if (h === applied) return;
    applied = h;
    if (results) searchAll(f); else filterCards(f);
    var anchor = location.hash.indexOf("#p-") === 0;
    if (h || !anchor) {  // keep an anchor to a card until a filter replaces it
      try { history.replaceState(null, "", h ? "#" + h : location.pathname + location.search); } catch (e) { /* some browsers refuse it on file:// */ }
    }
    document.querySelectorAll("a.pager-link").forEach(function (a) {
      a.href = a.getAttribute("href").split("#")[0] + (h ? "#" + h : "");
    });
  }

  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });
  fromHash();
  apply();

  // Keyboard: "/" searches; arrows (or j/k) move between the visible cards; Enter opens the still.
  function visible() { return cards.filter(function (c) { return !c.hidden; }); }
  function columns(list) {
    if (!list.length) return 1;
    var top = list[0].offsetTop, n = 0;
    while (n < list.length && list[n].offsetTop === top) n += 1;
    return Math.max(1, n);
  }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var t = e.target;
    if (t.closest && t.closest("input, select, textarea, video, button, summary, a")) {
      if (e.key === "Escape" && t.name === "q") { t.value = ""; apply(); }
      if (t.tagName !== "A") return;
    }
    if (e.key === "/") { e.preventDefault(); form.q.focus(); return; }
    var list = visible();
    if (!list.length) return;
    var card = t.closest ? t.closest(".card") : null;
    if (card && t === card && e.key === "Enter") {
      var full = card.querySelector("a.full");
      if (full) { full.click(); e.preventDefault(); }
      return;
    }
    var i = list.indexOf(card), step = { ArrowRight: 1, j: 1, ArrowLeft: -1, k: -1 }[e.key];
    if (e.key === "ArrowDown") step = columns(list);
    if (e.key === "ArrowUp") step = -columns(list);
    var next = null;
    if (step) next = list[Math.min(list.length - 1, Math.max(0, i < 0 ? 0 : i + step))];
    if (e.key === "Home" && card) next = list[0];
    if (e.key === "End" && card) next = list[list.length - 1];
    if (next) { e.preventDefault(); next.focus(); }
  });

  if (location.hash.indexOf("#p-") === 0) {  // arrived from the index's search: focus that card
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) target.focus();
  }
})();
