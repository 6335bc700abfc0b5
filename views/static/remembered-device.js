// "Remember this browser": a key only this browser holds. Ticking the box makes an ECDSA P-256 key pair whose private
// half cannot be exported (WebCrypto), keeps it in IndexedDB under its RFC 7638 thumbprint, and puts the public half
// in the second-factor forms for the server to record. Later, a page carrying a challenge (form
// data-remembered-device) signs it with that key and posts the signature; without the key, nothing happens and the
// user answers the second factor as usual. A copied cookie brings no key with it.
(function () {
  var subtle = window.crypto && window.crypto.subtle;
  if (!subtle || !window.indexedDB || !window.TextEncoder) return;
  var ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' };

  function keys(mode, work) {
    return new Promise(function (resolve, reject) {
      var open = indexedDB.open('latchkey', 1);
      open.onupgradeneeded = function () { open.result.createObjectStore('device-keys', { keyPath: 'id' }); };
      open.onerror = function () { reject(open.error); };
      open.onsuccess = function () {
        var tx = open.result.transaction('device-keys', mode);
        var request = work(tx.objectStore('device-keys'));
        tx.oncomplete = function () { open.result.close(); resolve(request && request.result); };
        tx.onerror = function () { open.result.close(); reject(tx.error); };
      };
    });
  }

  function base64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = '';
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function thumbprint(jwk) {
    var canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
    return subtle.digest('SHA-256', new TextEncoder().encode(canonical)).then(base64url);
  }

  // Remembering: the box appears only where script runs, and fills every second-factor form's remember_key.
  var box = document.querySelector('[data-remember-device]');
  if (box) {
    var fields = document.querySelectorAll('input[data-remember-key]');
    var checkbox = box.querySelector('input[type="checkbox"]');
    var made;
    box.hidden = false;
    checkbox.addEventListener('change', function () {
      fields.forEach(function (field) { field.value = ''; });
      if (made) {
        var id = made;
        made = undefined;
        keys('readwrite', function (store) { return store.delete(id); });
      }
      if (!checkbox.checked) return;
      subtle.generateKey(ALGORITHM, false, ['sign', 'verify']).then(function (pair) {
        return subtle.exportKey('jwk', pair.publicKey).then(function (jwk) {
          var publicKey = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
          return thumbprint(publicKey).then(function (id) {
            return keys('readwrite', function (store) { return store.put({ id: id, privateKey: pair.privateKey, created: Date.now() }); }).then(function () {
              if (!checkbox.checked) return keys('readwrite', function (store) { return store.delete(id); });
              made = id;
              fields.forEach(function (field) { field.value = JSON.stringify(publicKey); });
            });
          });
        });
      }).catch(function () {
        checkbox.checked = false;
      });
    });
  }

  // Answering: sign the server's payload with the key this browser keeps for the device the cookie names.
  var form = document.querySelector('form[data-remembered-device]');
  if (form) {
    keys('readonly', function (store) { return store.get(form.getAttribute('data-key-id')); }).then(function (entry) {
      if (!entry) return;
      var status = form.querySelector('[data-remembered-status]');
      if (status) status.hidden = false;
      var payload = new TextEncoder().encode(form.getAttribute('data-payload'));
      return subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, entry.privateKey, payload).then(function (signature) {
        form.querySelector('input[name="signature"]').value = base64url(signature);
        form.submit();
      });
    }).catch(function () { /* no key here: the second factor as usual */ });
  }
})();
