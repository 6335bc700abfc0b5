// Progressive enhancement only: every page works without this script.
(function () {
  // Tell the server the browser's time zone, so that dates show in local time until the account names one.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf('lk_tz=' + encodeURIComponent(zone)) === -1) {
      document.cookie = 'lk_tz=' + encodeURIComponent(zone) + '; path=/; max-age=31536000; samesite=lax';
    }
  } catch (e) { /* an old browser: dates stay in UTC */ }
  // Dangerous buttons ask first (the server asks again where it matters).
  document.addEventListener('submit', function (event) {
    var question = event.target.getAttribute && event.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
// Copy buttons (hidden without script): copy the text of the element they name, e.g. a key or the recovery codes.
(function () {
  if (!navigator.clipboard) return;
  var buttons = document.querySelectorAll('button[data-copy]');
  for (var i = 0; i < buttons.length; i++) {
    var button = buttons[i];
    var target = document.getElementById(button.getAttribute('data-copy'));
    if (!target) continue;
    button.hidden = false;
    button.addEventListener('click', function (event) {
      var b = event.currentTarget;
      var source = document.getElementById(b.getAttribute('data-copy'));
      var items = source.querySelectorAll('li');
      var text = items.length ? Array.prototype.map.call(items, function (li) { return li.textContent.trim(); }).join('\n') : source.textContent.trim();
      if (b.hasAttribute('data-copy-compact')) text = text.replace(/\s+/g, '');
      navigator.clipboard.writeText(text).then(function () {
        var label = b.textContent;
        b.textContent = b.getAttribute('data-copied');
        setTimeout(function () { b.textContent = label; }, 2000);
      });
    });
  }
})();
