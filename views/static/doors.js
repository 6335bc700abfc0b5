// Progressive enhancement for the door pages: each form works without this script.
(function () {
  // CSV import: a chosen file's text goes into the form's text field (the form posts text, not multipart).
  var picker = document.querySelector('[data-csv-file]');
  if (picker) {
    picker.hidden = false;
    picker.querySelector('input').addEventListener('change', function (event) {
      var file = event.target.files && event.target.files[0];
      if (!file) return;
      file.text().then(function (text) { document.getElementById('csv').value = text; });
    });
  }

  // Weekly grid editor: the selected day's column follows the rows as they are typed, and rows can be added.
  var editor = document.querySelector('[data-day-editor]');
  var week = document.querySelector('[data-week]');
  if (!editor || !week) return;
  var day = editor.getAttribute('data-day-editor');
  var rows = editor.querySelector('[data-window-rows] tbody');
  var toMinutes = function (value) {
    var m = /^(\d\d):(\d\d)$/.exec(value || '');
    return m ? Number(m[1]) * 60 + Number(m[2]) : null;
  };
  var labelOf = function (mode) {
    var option = rows.querySelector('select option[value="' + mode + '"]');
    return option ? option.textContent : mode;
  };
  function paint() {
    var windows = [];
    rows.querySelectorAll('[data-window-row]').forEach(function (row) {
      var inputs = row.querySelectorAll('input');
      var start = toMinutes(inputs[0].value);
      var end = inputs[1].value === '00:00' ? 1440 : toMinutes(inputs[1].value);
      if (start !== null && end !== null && end > start) windows.push({ start: start, end: end, mode: row.querySelector('select').value });
    });
    week.querySelectorAll('td[data-day="' + day + '"]').forEach(function (cell) {
      var hour = Number(cell.getAttribute('data-hour'));
      var w = windows.find(function (x) { return x.start < (hour + 1) * 60 && x.end > hour * 60; });
      cell.className = (w ? 'on mode-' + w.mode : '') + ' selected';
      cell.textContent = w ? labelOf(w.mode) : '';
    });
  }
  rows.addEventListener('input', paint);
  rows.addEventListener('change', paint);
  var add = document.createElement('button');
  add.type = 'button';
  add.textContent = editor.getAttribute('data-add-label') || '+';
  add.addEventListener('click', function () {
    var last = rows.querySelector('[data-window-row]:last-child');
    var copy = last.cloneNode(true);
    var n = rows.children.length;
    copy.querySelectorAll('input, select, label').forEach(function (el) {
      if (el.id) el.id = el.id.replace(/-w\d+-/, '-w' + n + '-');
      if (el.htmlFor) el.htmlFor = el.htmlFor.replace(/-w\d+-/, '-w' + n + '-');
      if (el.tagName === 'INPUT') el.value = '';
      el.removeAttribute('aria-invalid');
      el.removeAttribute('aria-describedby');
    });
    copy.querySelectorAll('.field-error').forEach(function (el) { el.remove(); });
    rows.appendChild(copy);
    copy.querySelector('input').focus();
  });
  editor.querySelector('[data-window-rows]').after(add);
})();
