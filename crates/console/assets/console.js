// Slipway console: live updates over server-sent events. Pages work without this file;
// it only swaps in the region #live whenever the server says it changed.
(function () {
  "use strict";
  var region = document.getElementById("live");
  if (!region || !window.EventSource) return;
  var url = "/ui/live?path=" + encodeURIComponent(location.pathname + location.search);
  var source = new EventSource(url);
  source.addEventListener("update", function (e) {
    var active = document.activeElement;
    // Do not pull a control away from under the keyboard.
    if (active && region.contains(active) && active !== document.body &&
        /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) return;
    var keep = active && region.contains(active) && active.closest("form") ?
      active.closest("form").getAttribute("action") : null;
    region.innerHTML = e.data;
    if (keep) {
      var again = region.querySelector('form[action="' + keep + '"] button');
      if (again) again.focus();
    }
    document.documentElement.setAttribute("data-live-updated", String(Date.now()));
  });
  source.addEventListener("gone", function () { source.close(); location.reload(); });
  source.onerror = function () { /* the browser reconnects by itself */ };
})();
